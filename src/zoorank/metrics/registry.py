"""Registry of transferability metrics: name -> function, what it needs, orientation.

Every registered score is oriented *higher = better* (metrics whose paper reports a loss,
e.g. PACTran, are negated inside their module and say so in the docstring).

A metric declares (:class:`Metric`) what it needs besides ``features`` and ``labels``:

- ``source_probs``: (N, C) source-task probabilities of the backbone's own classifier
  (LEEP, NCE);
- ``sample_ids``: (N,) identities of the samples (their canonical dataset positions), for the
  metrics that choose subsets, folds or an order (optional; row positions when absent). A
  choice made from the identity, never from the feature values, keeps every score a
  continuous function of the features;
- ``stats``: a per-pair ``_shared.PairStats`` memo (optional; ``score_all`` makes one) so that
  LogME and the two H-scores form the feature covariance once per pair, not once each;
- **upstream stages** (:class:`Upstream`): named, cached intermediates with their own target
  function, inputs, parameters and code version, received by the metric under a keyword
  (LEAD: ``svm_logits`` -> ``log_init``, ``ntk_eigenvalues`` or ``network_ntk_eigenvalues``
  -> ``class_eigenvalues``). The pipeline (``zoorank.pipeline.upstream``) resolves, keys,
  caches and passes them; nothing outside this package names a metric (docs/pipeline.md).

This module only declares; it imports no metric module (targets load on first use), so the
cached ranking path does not import torch.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

#: inputs of an upstream stage that are not stored arrays: the loaded backbone and the scored
#: images (a callable ``rows -> float tensor`` at the backbone's input size)
IMAGE_INPUTS = ("backbone", "images")
#: stored arrays of a (model, dataset) pair an upstream stage or a metric may read
STORED_INPUTS = ("features", "labels", "source_probs", "sample_ids")


def _resolve(target: str) -> Callable:
    """``"module:function"`` inside ``zoorank.metrics`` (``"lead:lead_score"``), or a fully
    qualified ``"package.module:function"`` (a plug-in's or a test's own metric)."""
    module, func = target.split(":")
    name = module if "." in module else f"zoorank.metrics.{module}"
    return getattr(importlib.import_module(name), func)


@dataclass(frozen=True)
class Upstream:
    """A cached stage a metric reads: ``target(**inputs, **params)`` -> one float64 array.

    ``name``: the stage's name (the ``<name>/`` prefix of its content keys); stages are shared by
    name: two metrics declaring the same name read one cache entry. ``keyword``: the metric's
    keyword for the output. ``inputs``: stored arrays (:data:`STORED_INPUTS`; ``sample_ids``
    optional: ``None`` when the pair has none) and/or :data:`IMAGE_INPUTS` (an image-level stage:
    the backbone is loaded, on a cache miss only). The key holds each input's identity (stored
    array: its checksum; backbone: the model identity; images: the subset fingerprint), the
    keyed parameters and ``version``. ``params``: defaults the metric declares for the stage
    (an empty dict keeps the function's own). ``from_metric``: metric parameter -> stage
    parameter (``{"svm_feature_norm": "feature_norm"}``: LEAD's own keyword reaches the stage).
    ``unkeyed``: parameters that change how, not what, is computed (device, chunk size...).
    ``when``: ``(selector, value)``: the stage applies only when the metric's selector parameter
    (:attr:`Metric.selectors`) has this value.
    """

    name: str
    target: str
    keyword: str
    inputs: tuple[str, ...] = ("features", "labels", "sample_ids")
    params: Mapping[str, object] = field(default_factory=dict)
    version: int = 1
    from_metric: Mapping[str, str] = field(default_factory=dict)
    unkeyed: tuple[str, ...] = ("device",)
    when: tuple[str, object] | None = None

    def __post_init__(self):
        unknown = set(self.inputs) - set(STORED_INPUTS) - set(IMAGE_INPUTS)
        if unknown:
            raise ValueError(f"upstream stage {self.name!r}: unknown input(s) {sorted(unknown)}; "
                             f"choose from {STORED_INPUTS + IMAGE_INPUTS}")

    @property
    def fn(self) -> Callable:
        return _resolve(self.target)

    @property
    def image_level(self) -> bool:
        return any(i in IMAGE_INPUTS for i in self.inputs)


@dataclass(frozen=True)
class ImageScores:
    """Per-image scores whose mean is the metric (for the tie set at the top of a ranking):
    ``target(labels=..., **upstream outputs, **params)`` with the metric's parameters named in
    ``params``."""

    target: str
    params: tuple[str, ...] = ()

    @property
    def fn(self) -> Callable:
        return _resolve(self.target)


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
    #: cached stages computed before the score (their outputs arrive under their keywords)
    upstream: tuple[Upstream, ...] = ()
    #: parameters that choose between upstream stages (name -> default); read by the
    #: pipeline, never passed to the metric's function
    selectors: Mapping[str, object] = field(default_factory=dict)
    image_scores: ImageScores | None = None
    #: ``(group, label, parameter overrides)``: one option changed at a time from the defaults,
    #: scored by the benchmark's ablation regime (``zoorank benchmark``)
    ablations: tuple[tuple[str, str, Mapping[str, object]], ...] = ()

    @property
    def fn(self) -> Callable:
        return _resolve(self.target)

    def check_params(self, params: Mapping[str, object]) -> None:
        """ValueError naming the metric and the parameters it takes when ``params`` has a key that
        neither its function, its selectors nor its stages' ``from_metric`` know."""
        if not params:                  # nothing to check: the function is not imported (no torch)
            return
        import inspect

        sig = inspect.signature(self.fn)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return
        known = ({n for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}
                 | set(self.selectors) | {k for u in self.upstream for k in u.from_metric})
        known -= {*self.needs, *self.optional}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"metric {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                             f"it takes: {', '.join(sorted(known)) or 'none'}")

    def upstream_for(self, params: Mapping[str, object] | None = None) -> tuple[Upstream, ...]:
        """The upstream stages that apply under the metric parameters ``params``."""
        params = params or {}
        chosen = {k: params.get(k, v) for k, v in self.selectors.items()}
        for k, v in chosen.items():
            allowed = {u.when[1] for u in self.upstream if u.when and u.when[0] == k}
            if allowed and v not in allowed:
                raise ValueError(f"metric {self.name!r}: {k}={v!r}; choose from {sorted(map(str, allowed))}")
        return tuple(u for u in self.upstream if u.when is None or chosen.get(u.when[0]) == u.when[1])

    def call_params(self, params: Mapping[str, object]) -> dict:
        """``params`` without the selectors (the metric's function does not take them)."""
        return {k: v for k, v in params.items() if k not in self.selectors}


_FL = ("features", "labels")
_IDS = ("sample_ids",)
_STATS = ("stats",)
_SRC = ("features", "labels", "source_probs")

# LEAD's cached stages (zoorank.metrics.lead; docs/lead.md). Versions 3: the values that
# STAGE_VERSIONS held before the stages were declared here (keys unchanged): svm 2, default svm
# feature_norm "standard" -> "l2"; 3, folds by sample identity; ntk 2, default NTK feature_norm
# "none" -> "l2"; 3, samples by identity; 4 (issue 13): svm default calibration Platt -> softmax
# T=0.1, head-only NTK default feature_norm "l2" -> "none". LEAD's own keywords reach the stages (from_metric).
_NTK_FROM_LEAD = {"samples_per_class": "samples_per_class", "ntk_feature_norm": "feature_norm",
                  "head_widths": "head_widths", "ntk_method": "method", "random_state": "random_state",
                  "dtype": "dtype"}
_LEAD_SVM = Upstream("svm_logits", "lead:svm_logits", "log_init", version=4,
                     from_metric={"normalisation": "normalisation", "cross_fit": "cross_fit",
                                  "svm_feature_norm": "feature_norm", "svm": "svm", "C": "C",
                                  "max_fit_samples": "max_fit_samples", "temperature": "temperature",
                                  "random_state": "random_state", "dtype": "dtype"})
#: ntk="head": the random head's NTK on the features (a deviation from the paper, docs/lead.md)
_LEAD_HEAD_NTK = Upstream("ntk_eigenvalues", "lead:class_ntk_eigenvalues", "class_eigenvalues", version=5,
                          params={"feature_norm": "standard"},   # 5: LEAD's head input "standard"
                          from_metric=_NTK_FROM_LEAD, when=("ntk", "head"))
#: ntk="network" (the default since LEAD version 3): the paper's kernel, the whole network F = h o f
#: on the selected images; S = 8 per class by default (the paper: 64; S = 2, 4, 8 ranked alike in
#: benchmarks/results/lead_ablation.md, and S = 64 costs 8x the per-sample gradients: docs/lead.md)
_LEAD_NETWORK_NTK = Upstream("network_ntk_eigenvalues", "lead:network_ntk_eigenvalues", "class_eigenvalues",
                             inputs=("backbone", "images", "labels", "sample_ids", "features"), version=2,
                             params={"samples_per_class": 8, "feature_norm": "standard"},
                             from_metric=_NTK_FROM_LEAD, when=("ntk", "network"),
                             unkeyed=("device", "chunk_size", "engine", "progress"))

#: LEAD's ablations (the benchmark's LEAD table): one lead_score keyword changed at a time
_LEAD_ABLATIONS = (
    *(("eta_t", f"eta_t={v:g}", {"eta_t": v}) for v in (0.0, 1e-6, 1e-5, 5e-5, 1e-4, 1e-3, 1e-2)),
    *(("samples_per_class", f"S={v}", {"samples_per_class": v}) for v in (2, 5, 10, 64)),
    *(("normalisation", f"svm norm={v}", {"normalisation": v}) for v in ("platt", "softmax", "temperature")),
    ("cross_fit", "cross_fit=0 (in-sample)", {"cross_fit": 0}),
    ("cross_fit", "cross_fit=5 (out-of-fold)", {"cross_fit": 5}),
    *(("eigenvalue_scale", f"eig scale={v}", {"eigenvalue_scale": v}) for v in ("mean", "max", "none")),
    *(("svm_feature_norm", f"svm features={v}", {"svm_feature_norm": v}) for v in ("standard", "l2", "none")),
    *(("ntk_feature_norm", f"ntk features={v}", {"ntk_feature_norm": v}) for v in ("none", "l2", "standard")),
)

METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("lead", "lead:lead_score", _FL, optional=("log_init", "class_eigenvalues") + _IDS,
           paper="Hu et al., LEAD, CVPR 2024", upstream=(_LEAD_SVM, _LEAD_HEAD_NTK, _LEAD_NETWORK_NTK),
           # version 2 (issue 13): Eq. 7 defaults eta_t 1 -> 5e-5 per logit (lambda / K), no per-model scale;
           # version 3 (issue 13): defaults ntk "head" -> "network" (the paper's kernel), head input
           # "none" -> "standard" (docs/lead.md)
           version=3,
           selectors={"ntk": "network"},
           image_scores=ImageScores("zoorank.reporting.ties:lead_image_scores",
                                    ("eta_t", "eigenvalue_scale", "apply_softmax")),
           ablations=_LEAD_ABLATIONS),
    Metric("logme", "logme:logme_score", _FL, optional=_STATS, paper="You et al., LogME, ICML 2021"),
    Metric("leep", "leep:leep_score", _SRC, paper="Nguyen et al., LEEP, ICML 2020"),
    Metric("nce", "nce:nce_score", _SRC, paper="Tran et al., NCE, ICCV 2019"),
    # version 2 (#17): covariance_type="full" fitted by metrics/_gmm.py (equal to sklearn's up to rounding)
    Metric("nleep", "nleep:nleep_score", _FL, optional=_IDS, paper="Li et al., N-LEEP, CVPR 2021", version=2),
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


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the registry (a plug-in, or a test's toy metric); its upstream stages
    are cached by the pipeline with no pipeline code touched. Returns it."""
    if not isinstance(metric, Metric):
        raise TypeError(f"register_metric takes a Metric, got {type(metric).__name__}")
    if metric.name in METRICS and not replace:
        raise ValueError(f"metric {metric.name!r} is already registered (replace=True to change it)")
    keywords = [u.keyword for u in metric.upstream if u.when is None]
    if len(set(keywords)) != len(keywords):
        raise ValueError(f"metric {metric.name!r}: two unconditional upstream stages share a keyword")
    METRICS[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove a metric added by :func:`register_metric`."""
    get_metric(name)
    del METRICS[name]


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
    accepted = set(extra) | set(metric.optional) | {u.keyword for u in metric.upstream}
    known = _known_inputs()
    params = metric.call_params({k: v for k, v in inputs.items() if k in accepted or k not in known})
    value = float(metric.fn(features, labels, **params))
    if not math.isfinite(value):
        raise ValueError(f"metric {name!r} produced a non-finite score ({value})")
    return value


def _known_inputs() -> set[str]:
    """Every input keyword of some metric (a stored array, the stats memo, an upstream output):
    dropped for a metric that does not take it, so one dict of inputs serves every metric."""
    return {*STORED_INPUTS, "stats"} | {u.keyword for m in METRICS.values() for u in m.upstream}


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
