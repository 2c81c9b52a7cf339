"""The one runner of the upstream stages metrics declare (``zoorank.metrics.registry.Upstream``).

A metric names the cached intermediates it reads before its score (LEAD: SVM logits and class NTK
eigenvalues); this module plans them from the metric's parameters (:func:`plan_metric`), keys them
(:func:`upstream_key`: each input's identity + the keyed parameters + the stage's declared
version), and computes a missing one (:func:`ensure_upstream`), generically: no metric is named
here. Stored-array inputs are read from the store; an image-level stage (inputs ``backbone`` /
``images``) loads the backbone and the scored images through a :class:`PairSources` only on a
cache miss, so a cached rerun never loads a backbone. docs/pipeline.md explains the rules.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from zoorank.metrics import registry as metric_registry
from zoorank.pipeline.stages import FeatureKeys, StageResult, ensure_sample_ids
from zoorank.storage.arrays import ArrayStore
from zoorank.storage.keys import canonical_json, content_key
from zoorank.support.faults import kill_point

__all__ = ["PairRef", "PairSources", "StagePlan", "MetricPlan", "plan_metric", "plan_metrics",
           "distinct_stages", "upstream_key", "ensure_upstream", "stage_counts"]


@dataclass(frozen=True)
class PairRef:
    """One (model, dataset subset) pair as the stages see it: the keys of its stored arrays and
    the identities of its backbone and scored subset (``None`` for arrays given without them)."""

    keys: FeatureKeys
    model_identity: str | None = None
    dataset_fingerprint: str | None = None
    label: str = ""


class PairSources(Protocol):
    """Where an image-level stage gets its backbone and images (called on a cache miss only)."""

    def load_backbone(self, device: str) -> Any: ...

    def images(self) -> Any: ...


@dataclass(frozen=True)
class StagePlan:
    """One upstream stage with the parameters it runs under for one metric."""

    stage: metric_registry.Upstream
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ident(self) -> str:
        """Same stage, same keyed parameters -> one computation (two metrics may share it)."""
        keyed = {k: v for k, v in self.params.items() if k not in self.stage.unkeyed}
        return f"{self.stage.name}:{self.stage.version}:{canonical_json(keyed)}"


@dataclass(frozen=True)
class MetricPlan:
    """A metric's upstream stages (in declaration order) and the parameters of its own score."""

    metric: str
    stages: tuple[StagePlan, ...] = ()
    score_params: Mapping[str, Any] = field(default_factory=dict)


def plan_metric(metric: str, metric_params: Mapping | None = None,
                stage_params: Mapping[str, Mapping] | None = None) -> MetricPlan:
    """The upstream stages of ``metric`` under its parameters ``metric_params`` (selectors choose
    among declared stages; a parameter a stage maps in ``from_metric`` goes to that stage and
    leaves the score's parameters). A stage's parameters: its declared defaults, then
    ``stage_params[<stage name>]``, then the routed metric parameters."""
    spec = metric_registry.get_metric(metric)
    mp = dict(metric_params or {})
    spec.check_params(mp)
    chosen = spec.upstream_for(mp)
    routed_names: set[str] = set()
    plans = []
    for u in chosen:
        routed = {u.from_metric[k]: v for k, v in mp.items() if k in u.from_metric}
        routed_names |= {k for k in mp if k in u.from_metric}
        params = {**dict(u.params), **dict((stage_params or {}).get(u.name, {})), **routed}
        plans.append(StagePlan(u, params))
    score_params = {k: v for k, v in mp.items() if k not in routed_names}
    return MetricPlan(metric, tuple(plans), score_params)


def plan_metrics(metrics, metric_params: Mapping | None = None,
                 stage_params: Mapping | None = None) -> list[MetricPlan]:
    stray = sorted(set(metric_params or {}) - set(metrics))
    if stray:
        raise ValueError(f"parameters given for metric(s) {', '.join(map(repr, stray))} that this ranking does "
                         f"not compute (metrics: {', '.join(metrics)})")
    return [plan_metric(m, (metric_params or {}).get(m, {}), stage_params) for m in metrics]


def distinct_stages(plans) -> list[StagePlan]:
    """The upstream stages of several metrics, each computation once (declaration order)."""
    seen: dict[str, StagePlan] = {}
    for p in plans:
        for s in p.stages:
            seen.setdefault(s.ident, s)
    return list(seen.values())


def stage_counts(plans, n_pairs: int) -> dict[str, int]:
    """``{stage name: stages to run}`` for ``n_pairs`` pairs (for the progress display)."""
    counts: dict[str, int] = {}
    for s in distinct_stages(plans):
        counts[s.stage.name] = counts.get(s.stage.name, 0) + n_pairs
    return counts


def _input_parts(store: ArrayStore, stage: metric_registry.Upstream, pair: PairRef) -> dict:
    parts: dict[str, Any] = {}
    for name in stage.inputs:
        if name == "backbone":
            parts["model"] = _need(pair.model_identity, stage, "a model identity")
        elif name == "images":
            parts["dataset"] = _need(pair.dataset_fingerprint, stage, "a dataset subset")
        else:
            key = getattr(pair.keys, name)
            if key is not None:
                parts[name] = store.checksum(key)
            elif name != "sample_ids":
                raise ValueError(f"upstream stage {stage.name!r} needs {name!r}, which pair {pair.label!r} "
                                 "does not have")
    return parts


def _need(value, stage, what):
    if value is None:
        raise ValueError(f"upstream stage {stage.name!r} is image-level and needs {what}; "
                         "arrays given without a backbone and a dataset cannot feed it")
    return value


def upstream_key(store: ArrayStore, plan: StagePlan, pair: PairRef) -> str:
    """Content key of one stage output: ``<name>/<digest of inputs' identities, keyed params,
    version>``. Stored inputs enter as their checksums, the backbone as the model identity, the
    images as the subset fingerprint; ``unkeyed`` parameters (device, chunk size...) do not."""
    stage = plan.stage
    keyed = {k: v for k, v in plan.params.items() if k not in stage.unkeyed}
    return content_key(stage.name, stage_version=stage.version, **_input_parts(store, stage, pair),
                       params=keyed)


def image_rows(images, input_size) -> Callable[[np.ndarray], Any]:
    """``rows -> float tensor (B, 3, H, W)`` in [0, 1] at ``input_size``: the extraction's own
    loader path (``zoorank.compute.extract``: uint8 batches, then the device-side resize)."""
    from zoorank.compute.extract import UInt8Batches, to_model_input

    size = (int(input_size[0]), int(input_size[1]))

    def load(rows):
        rows = np.asarray(rows, dtype=np.int64)
        batch, _, _ = UInt8Batches(images.subset(rows), max(1, len(rows)), size)[0]
        return to_model_input(batch, size)

    return load


def ensure_upstream(store: ArrayStore, plan: StagePlan, pair: PairRef, *, device: str | None = None,
                    sources: PairSources | None = None) -> StageResult:
    """Return the cached output of one upstream stage, computing and publishing it on a miss.

    The target runs as ``target(**inputs, **params)``; a ``device`` the stage takes (declared
    unkeyed) comes from ``params["device"]``, else ``device``, else ``"cpu"``: where a stage runs
    is not part of its key (the CPU and GPU paths run the same torch code and agree to float32
    rounding: LEAD's score was equal to the CPU one to 5e-10 on an H100). The target's module is
    imported only on a miss.
    """
    start = time.perf_counter()
    stage = plan.stage
    if stage.image_level and sources is not None and pair.keys.sample_ids is not None:
        ensure_sample_ids(store, pair.keys, sources.images())
    key = upstream_key(store, plan, pair)
    if store.exists(key):
        return StageResult(stage.name, key, True, time.perf_counter() - start, {})
    params = dict(plan.params)
    run_device = params.pop("device", None) or device or "cpu"
    kwargs = dict(params)
    if "device" in stage.unkeyed:
        kwargs["device"] = run_device
    backbone = None
    for name in stage.inputs:
        if name == "backbone":
            if sources is None:
                raise ValueError(f"upstream stage {stage.name!r} needs the backbone; no sources given")
            backbone = kwargs["backbone"] = sources.load_backbone(run_device)
        elif name == "images":
            continue
        else:
            k = getattr(pair.keys, name)
            kwargs[name] = store.get(k) if k is not None else None
    if "images" in stage.inputs:
        size = getattr(getattr(backbone, "config", None), "input_size", None)
        if size is None:
            raise ValueError(f"upstream stage {stage.name!r}: the backbone of {pair.label!r} has no "
                             "config.input_size to load images at")
        kwargs["images"] = image_rows(sources.images(), size)
    value = stage.fn(**kwargs)
    kill_point(stage.name)
    store.put(key, np.asarray(value, dtype=np.float64))
    return StageResult(stage.name, key, False, time.perf_counter() - start, {"device": str(run_device)})
