"""Registry of transferability metrics: name -> function, required inputs, orientation.

Every registered score is oriented *higher = better* (metrics whose paper reports a loss,
e.g. PACTran, are negated inside their module and say so in the docstring).

Inputs a metric may need besides ``features`` and ``labels``:
- ``source_probs``: (N, C) source-task probabilities of the backbone's own classifier
  (LEEP, NCE);
- ``log_init`` / ``class_eigenvalues``: LEAD's cached stages (optional; computed if absent);
- ``sample_ids``: (N,) identities of the samples (their canonical dataset positions), for the
  metrics that choose subsets, folds or an order (optional; row positions when absent). A
  choice made from the identity, never from the feature values, keeps every score a
  continuous function of the features;
- ``stats``: a per-pair ``_shared.PairStats`` memo (optional; ``score_all`` makes one) so that
  LogME and the two H-scores form the feature covariance once per pair, not once each.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True)
class Metric:
    name: str
    target: str                      # "module:function" inside zoorank.metrics
    needs: tuple[str, ...] = ("features", "labels")
    optional: tuple[str, ...] = ()   # extra keyword inputs it accepts when available
    higher_is_better: bool = True    # always True for registered scores (oriented inside)
    paper: str = ""
    defaults: Mapping[str, object] = field(default_factory=dict)
    #: code version of this metric's score: bump it when its defaults or code change what it
    #: returns, and only its cached scores recompute (the shared "scores" stage version would
    #: invalidate every metric's)
    version: int = 1

    @property
    def fn(self) -> Callable:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(f"zoorank.metrics.{module}"), func)


_FL = ("features", "labels")
_IDS = ("sample_ids",)
_STATS = ("stats",)
_SRC = ("features", "labels", "source_probs")

METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("lead", "lead:lead_score", _FL, optional=("log_init", "class_eigenvalues") + _IDS,
           paper="Hu et al., LEAD, CVPR 2024"),
    Metric("logme", "logme:logme_score", _FL, optional=_STATS, paper="You et al., LogME, ICML 2021"),
    Metric("leep", "leep:leep_score", _SRC, paper="Nguyen et al., LEEP, ICML 2020"),
    Metric("nce", "nce:nce_score", _SRC, paper="Tran et al., NCE, ICCV 2019"),
    Metric("nleep", "nleep:nleep_score", _FL, optional=_IDS, paper="Li et al., N-LEEP, CVPR 2021"),
    Metric("hscore", "hscore:hscore", _FL, optional=_STATS, paper="Bao et al., H-score, ICIP 2019"),
    Metric("reg_hscore", "hscore:regularized_hscore", _FL, optional=_STATS,
           paper="Ibrahim et al., regularised H-score (shrinkage), ICLR 2022"),
    # version 2 (#17): float32 Gram blocks for float32 features, as the reference
    Metric("transrate", "transrate:transrate_score", _FL, paper="Huang et al., TransRate, ICML 2022",
           version=2),
    Metric("parc", "parc:parc_score", _FL, optional=_IDS, paper="Bolya et al., PARC, NeurIPS 2021"),
    Metric("gbc", "gbc:gbc_score", _FL, paper="Pandy et al., GBC, CVPR 2022"),
    # version 2 (#17): ConfMix output in the features' dtype, as the reference
    Metric("sfda", "sfda:sfda_score", _FL, paper="Shao et al., SFDA, ECCV 2022", version=2),
    Metric("ped", "ped:ped_score", _FL, paper="Li et al., PED, ICCV 2023"),
    # version 2 (#17): float32 exp in the energy for float32 features, as the reference
    Metric("etran", "etran:etran_score", _FL, paper="Gholami et al., ETran, ICCV 2023", version=2),
    Metric("pactran", "pactran:pactran_score", _FL, optional=_IDS, paper="Ding et al., PACTran, ECCV 2022"),
    Metric("lfc", "lfc:lfc_score", _FL, optional=_IDS, paper="Deshpande et al., linearized framework, 2021"),
    Metric("lgc", "lgc:lgc_score", _FL, optional=_IDS, paper="Deshpande et al., linearized framework, 2021"),
    Metric("knn", "knn:knn_score", _FL, optional=_IDS, paper="Sorkhei et al., kNN transferability, 2025"),
]}


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        import difflib
        close = difflib.get_close_matches(name, METRICS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown metric {name!r}{hint} (known: {', '.join(METRICS)})") from None


def score(name: str, features, labels, **inputs) -> float:
    """Run metric ``name``; ``inputs`` holds its extra inputs and parameters.

    Inputs the metric does not need (e.g. ``source_probs`` for LogME) are dropped, so one
    dict of everything available can be passed to every metric.
    """
    metric = get_metric(name)
    extra = [n for n in metric.needs if n not in ("features", "labels")]
    missing = [n for n in extra if inputs.get(n) is None]
    if missing:
        raise ValueError(f"metric {name!r} needs {', '.join(missing)} (not provided)")
    accepted = set(extra) | set(metric.optional)
    params = {k: v for k, v in inputs.items()
              if k in accepted or k not in _KNOWN_INPUTS}
    value = float(metric.fn(features, labels, **params))
    if not math.isfinite(value):
        raise ValueError(f"metric {name!r} produced a non-finite score ({value})")
    return value


_KNOWN_INPUTS = {"source_probs", "log_init", "class_eigenvalues", "sample_ids", "stats"}


def available(inputs: Mapping[str, object]) -> list[str]:
    """Names of metrics whose required inputs are all present in ``inputs``."""
    have = {k for k, v in inputs.items() if v is not None} | {"features", "labels"}
    return [m.name for m in METRICS.values() if set(m.needs) <= have]


def score_all(features, labels, names=None, *, errors: str = "record",
              params: Mapping[str, Mapping[str, object]] | None = None,
              **inputs) -> dict[str, float | str]:
    """Score every metric in ``names`` (default: all whose inputs are available).

    ``params`` maps a metric name to its keyword parameters. With ``errors="record"`` a
    failing metric's entry is the error message (a ``str``) and the others go on; with
    ``errors="raise"`` the first failure propagates.
    """
    if errors not in ("record", "raise"):
        raise ValueError(f"errors must be 'record' or 'raise', got {errors!r}")
    names = list(names) if names is not None else available({"features": 1, **inputs})
    if inputs.get("stats") is None:                 # one memo of shared statistics per pair
        from zoorank.metrics._shared import PairStats
        inputs["stats"] = PairStats(features, labels)
    out: dict[str, float | str] = {}
    for name in names:
        try:
            out[name] = score(name, features, labels, **inputs, **dict((params or {}).get(name, {})))
        except Exception as exc:  # noqa: BLE001 - recorded per metric, by request
            if errors == "raise":
                raise
            out[name] = f"{type(exc).__name__}: {exc}"
    return out
