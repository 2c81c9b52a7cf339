"""Pipeline stages as plain functions: compute an intermediate once, cache it under its content key.

Each ``ensure_*`` function computes the content key of its output (model id + weights
digest + dataset fingerprint + subset + preprocessing version + stage code version +
parameters, see ``zoorank.storage.keys``), returns the cached entry when a complete and
verified one exists, and otherwise computes it and publishes it atomically. They pass keys,
not arrays, so Prefect tasks (``zoorank.orchestration.tasks``) are thin wrappers around them, and the
same functions run without Prefect (benchmarks compare the two).

Data flow: dataset + model -> features (+ source_probs, + sample_ids) -> the upstream stages a
metric declares (``zoorank.metrics.registry.Upstream``, run by ``zoorank.pipeline.upstream``)
-> one score per metric (:func:`ensure_score`, the one scoring path: whole pairs and row
subsets alike). ``sample_ids`` are the images' positions in the dataset's canonical order:
metrics that pick folds, subsets or an order pick them by these identities, never by feature
values (docs/science.md, "Sample identity"). Stages, keys and declaring a stage: docs/pipeline.md.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from zoorank.support.faults import kill_point
from zoorank.metrics import registry as metric_registry
from zoorank.storage.arrays import ArrayStore, CacheMiss, CorruptEntry
from zoorank.storage.keys import content_digest, content_key

PREPROCESSING_VERSION = "rgb-uint8-bilinear-antialias-v1"


@dataclass(frozen=True)
class SubsetSpec:
    """Which images of a dataset are scored: a seeded stratified split, then ``per_class``."""

    split: str = "train"
    per_class: int | None = None
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StageResult:
    """Outcome of one stage: the key of its output, whether it came from cache, its time."""

    stage: str
    key: str
    cache_hit: bool
    seconds: float
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureKeys:
    """Keys of one (model, dataset subset) extraction: features, labels, source probabilities,
    and the images' identities (``None`` for arrays given without a dataset)."""

    features: str
    labels: str
    source_probs: str | None
    sample_ids: str | None = None


def _timed(stage: str, key: str, hit: bool, start: float, **info) -> StageResult:
    return StageResult(stage, key, hit, time.perf_counter() - start, info)


def select_subset(dataset, subset: SubsetSpec):
    """The images a ranking scores: ``subset.split`` of a seeded stratified split (or
    ``"all"``), then at most ``per_class`` images per class (seeded): a class with fewer
    images is used whole (``zoorank.data.splits.subsample_per_class``; the ranking's notes name
    it)."""
    from zoorank.data import stratified_split, subsample_per_class

    if subset.split == "all":
        idx = np.arange(len(dataset))
    else:
        splits = stratified_split(dataset.labels, random_state=subset.seed)
        if subset.split not in splits:
            raise ValueError(f"unknown split {subset.split!r}; choose from {sorted(splits)} or 'all'")
        idx = np.sort(splits[subset.split])
    if subset.per_class is not None:
        try:
            chosen = subsample_per_class(dataset.labels[idx], subset.per_class, random_state=subset.seed)
        except ValueError as exc:
            raise ValueError(f"dataset {dataset.dataset_id!r} ({subset.split} split): {exc}") from None
        idx = idx[np.sort(chosen)]
    return dataset.subset(idx)


def feature_keys(model_identity: str, dataset_fingerprint: str, has_outputs: bool) -> FeatureKeys:
    """Content keys of an extraction: model identity (id + weights digest) x dataset subset."""
    parts = dict(model=model_identity, dataset=dataset_fingerprint, preprocessing=PREPROCESSING_VERSION)
    return FeatureKeys(
        features=content_key("features", **parts),
        labels=content_key("labels", dataset=dataset_fingerprint),
        source_probs=content_key("source_probs", **parts) if has_outputs else None,
        sample_ids=content_key("sample_ids", dataset=dataset_fingerprint),
    )


def ensure_sample_ids(store: ArrayStore, keys: FeatureKeys, images) -> None:
    """Publish the images' canonical dataset positions (cheap: no backbone, no pixels)."""
    if keys.sample_ids is not None and not store.exists(keys.sample_ids):
        store.put(keys.sample_ids, np.asarray(images.rows, dtype=np.int64))


def upstream_checksums(store: ArrayStore, keys: FeatureKeys, names) -> dict:
    """Checksums of the named inputs (``features``, ``labels``, ``source_probs``,
    ``sample_ids``) that exist for this pair: the upstream part of a downstream key."""
    return {n: store.checksum(getattr(keys, n)) for n in names if getattr(keys, n) is not None}


def metric_inputs(spec: "metric_registry.Metric") -> tuple[str, ...]:
    """The stored arrays a metric reads: features, labels and whichever of ``source_probs``
    (required) and ``sample_ids`` (optional) it declares."""
    extra = [n for n in ("source_probs", "sample_ids") if n in spec.needs or n in spec.optional]
    return ("features", "labels", *extra)


def ensure_features(store: ArrayStore, keys: FeatureKeys, load_backbone, images, *,
                    batch_size: int = 64, device: str = "cpu", num_workers: int = 0,
                    progress=None) -> StageResult:
    """Extract (or reuse) features, labels and source-task probabilities of ``images``.

    ``load_backbone`` is called only on a cache miss. The features entry is published last,
    so its presence (verified) means the whole stage finished. The extractor (torch) is imported
    only on a miss.
    """
    start = time.perf_counter()
    wanted = [keys.labels, keys.features] + ([keys.source_probs] if keys.source_probs else [])
    if all(store.exists(k) for k in wanted):
        ensure_sample_ids(store, keys, images)
        return _timed("features", keys.features, True, start)
    from zoorank.compute.extract import extract_features

    backbone = load_backbone()
    result = extract_features(backbone, images, batch_size=batch_size, device=device,
                              num_workers=num_workers, with_outputs=keys.source_probs is not None,
                              progress=progress)
    feats = np.asarray(result.features, dtype=np.float32)
    if not np.all(np.isfinite(feats)):
        bad = int(np.count_nonzero(~np.isfinite(feats).all(axis=1)))
        raise ValueError(f"backbone produced NaN/inf features for {bad} of {len(feats)} images "
                         f"(dataset {images.dataset_id!r}); nothing was cached")
    store.put(keys.labels, np.asarray(images.labels, dtype=np.int64))
    ensure_sample_ids(store, keys, images)
    if keys.source_probs is not None:
        if result.source_probs is None:
            raise ValueError("backbone declared source-task outputs but returned none")
        store.put(keys.source_probs, np.asarray(result.source_probs, dtype=np.float32))
    kill_point("features")
    store.put(keys.features, feats, attrs={"dataset": images.dataset_id, "n": int(feats.shape[0])})
    return _timed("features", keys.features, False, start, n=int(feats.shape[0]), dim=int(feats.shape[1]))


def rows_digest(rows) -> str:
    """Identity of a row subset of a pair (a low-data subset of the benchmark) in score keys."""
    return content_digest("scores", rows=np.asarray(rows, dtype=np.int64))


def score_key(spec: "metric_registry.Metric", upstream: dict, params: dict) -> str:
    """Content key of one metric's score; the metric's own version enters only once bumped
    (so version 1 keeps the keys written before versions existed)."""
    versioned = {"metric_version": spec.version} if spec.version != 1 else {}
    return content_key("scores", metric=spec.name, upstream=upstream, params=params, **versioned)


def ensure_score(store: ArrayStore, metric: str, keys: FeatureKeys, *, params: dict | None = None,
                 upstream: dict[str, str] | None = None, rows=None,
                 pair_inputs: dict | None = None) -> StageResult:
    """Score one metric on cached inputs; the record holds ``{"score": x}`` or ``{"error": msg}``.

    ``upstream``: ``{keyword: key}`` of the metric's upstream stage outputs
    (``zoorank.pipeline.upstream``), passed to the metric under their keywords; their checksums
    enter the score key. ``rows``: score only these rows of the pair (the benchmark's low-data
    subsets): their digest enters the key; the metric then runs whole on the subset (its
    upstream stages, if any, computed inside it). A metric that fails on this pair is recorded as
    failed with its reason (and not retried until its inputs or parameters change); the other
    metrics go on. A metric that needs source-task probabilities is skipped (no work,
    ``info["skipped"]``) for a backbone without a source-task head. ``pair_inputs``: a dict shared
    by the calls for one pair; the arrays read from the store and the statistics several metrics
    share (``metrics._shared.PairStats``) are kept there, so they are read and computed once per
    pair, not once per metric.
    """
    start = time.perf_counter()
    spec = metric_registry.get_metric(metric)
    params = dict(params or {})
    upstream = dict(upstream or {})
    if "source_probs" in spec.needs and keys.source_probs is None:
        return _timed("score", metric, True, start, skipped="the model has no source-task outputs")
    parts = upstream_checksums(store, keys, metric_inputs(spec))
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        parts["rows"] = rows_digest(rows)
    parts.update({kw: store.checksum(k) for kw, k in upstream.items()})
    key = score_key(spec, parts, params)
    try:
        return _timed("score", key, True, start, **store.get_record(key))
    except (CacheMiss, CorruptEntry):
        pass
    shared = pair_inputs if pair_inputs is not None else {}

    def read(name: str):
        if name not in shared:
            shared[name] = store.get(getattr(keys, name))
        return shared[name] if rows is None else shared[name][rows]

    features, labels = read("features"), read("labels")
    inputs = {n: read(n) for n in ("source_probs", "sample_ids") if n in parts}
    if "stats" in spec.optional and rows is None:
        if "stats" not in shared:
            from zoorank.metrics._shared import PairStats
            shared["stats"] = PairStats(features, labels)
        inputs["stats"] = shared["stats"]
    inputs.update({kw: store.get(k) for kw, k in upstream.items()})
    try:
        value = {"score": metric_registry.score(metric, features, labels, **inputs, **params)}
    except (ValueError, np.linalg.LinAlgError, ArithmeticError) as exc:
        value = {"error": f"{type(exc).__name__}: {exc}"}
    kill_point("score")
    store.put_record(key, value)
    return _timed("score", key, False, start, **value)
