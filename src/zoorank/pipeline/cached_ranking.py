"""A whole ranking served from the cache, with or without Prefect, and what is read back around
its pairs: the per-image scores of the recommended metric (for the tie set at the top) and the
notes on the scored subsets. Imports no Prefect.

A fully cached ranking (:func:`pairs_from_cache`) runs the very stage functions the Prefect tasks
call (``zoorank.pipeline.stages``, ``zoorank.pipeline.upstream``), on a :class:`CacheOnlyStore` whose
misses raise :class:`NotCached` before any work starts, so either every stage of every pair is
answered from the verified store (no Prefect server, ~1 s) or nothing was done and the Prefect
flow runs as usual.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from zoorank.config import DEFAULT_RANK_BY
from zoorank.metrics import registry as metric_registry
from zoorank.pipeline import stages
from zoorank.pipeline.outcomes import collect_pair
from zoorank.pipeline.pair_run import score_pair
from zoorank.pipeline.upstream import PairRef, plan_metrics
from zoorank.storage.arrays import CacheMiss, CorruptEntry

__all__ = ["NotCached", "CacheOnlyStore", "pairs_from_cache", "image_scores", "subset_notes"]


class NotCached(Exception):
    """A stage of the ranking is not in the store (the flow has work to do)."""


class CacheOnlyStore:
    """A view of a store (an :class:`ArrayStore` or a layered one) that answers only from what
    is there: a missing or damaged entry or record raises :class:`NotCached` instead of letting a
    stage compute it, and nothing is written."""

    def __init__(self, inner):
        self._inner = inner
        self._seen: set[str] = set()
        self._sums: dict[str, str] = {}

    def exists(self, key: str, *, deep: bool = True) -> bool:
        if key not in self._seen:          # published entries never change: verify each once
            if not self._inner.exists(key, deep=deep):
                raise NotCached(key)
            self._seen.add(key)
        return True

    def checksum(self, key: str) -> str:
        """Memoised: every score of a pair asks for the same upstream checksums (17 metrics x 3)."""
        if key not in self._sums:
            self._sums[key] = self._inner.checksum(key)
        return self._sums[key]

    def get_record(self, key: str):
        try:
            return self._inner.get_record(key)
        except (CacheMiss, CorruptEntry):
            raise NotCached(key) from None

    def put(self, key: str, *_args, **_kwargs):
        raise NotCached(key)

    put_record = writer = put

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _no_work(*_args, **_kwargs):
    raise NotCached("a backbone would have to be loaded")


class _CachedSources:
    """The scored images in memory; a backbone would mean work (:class:`NotCached`)."""

    def __init__(self, images):
        self._images = images

    def images(self):
        return self._images

    load_backbone = staticmethod(_no_work)


def _identity(spec, store):
    from zoorank.pipeline.identity import model_identity

    return model_identity(spec, store, load_backbone=_no_work)


def pairs_from_cache(store, specs: list, images: dict, metrics: list[str], metric_params: dict | None = None,
                     stage_params: dict | None = None, device: str = "cpu"):
    """Every (model, dataset) pair from the cache: a list of PairOutcome, or ``None`` as soon as
    one stage is missing (nothing computed). ``store``: an ArrayStore or a layered one;
    ``images``: ``{dataset id: scored images}``."""
    store = CacheOnlyStore(store)
    plans = plan_metrics(metrics, metric_params, stage_params)
    outcomes = []
    try:
        for d, imgs in images.items():
            dataset = {"dataset": d, "fingerprint": imgs.fingerprint()}
            for spec in specs:
                model = _identity(spec, store)
                keys = stages.feature_keys(model["identity"], dataset["fingerprint"], model["has_outputs"])
                feat = stages.ensure_features(store, keys, _no_work, imgs, device=device)
                pair = PairRef(keys, model["identity"], dataset["fingerprint"], f"{model['model']} / {d}")
                results, scores, upstream = score_pair(store, pair, plans, device=device,
                                                       sources=_CachedSources(imgs))
                outcomes.append(collect_pair(model, dataset, asdict(keys), [feat, *results], scores, upstream))
    except NotCached:
        return None
    return outcomes


def image_scores(store, outcomes: list, metric_params: dict | None = None,
                 rank_by: str = DEFAULT_RANK_BY) -> dict[str, dict[str, np.ndarray]]:
    """``{dataset: {model: per-image scores}}`` of the metric ``rank_by`` (its declared
    :class:`~zoorank.metrics.registry.ImageScores`, whose mean is the score) from each pair's cached
    upstream outputs; empty when the metric declares none."""
    spec = metric_registry.get_metric(rank_by)
    if spec.image_scores is None:
        return {}
    fn = spec.image_scores.fn
    params = {k: v for k, v in (metric_params or {}).get(rank_by, {}).items() if k in spec.image_scores.params}
    out: dict[str, dict[str, np.ndarray]] = {}
    for o in outcomes:
        up = o.upstream.get(rank_by)
        if not up or not np.isfinite(o.scores.get(rank_by, np.nan)):
            continue
        inputs = {kw: store.get(k) for kw, k in up.items()}
        out.setdefault(o.dataset, {})[o.model] = np.asarray(fn(labels=store.get(o.keys["labels"]), **inputs,
                                                              **params))
    return out


def subset_notes(images: dict, per_class: int | None, split: str) -> dict[str, list[str]]:
    """``{dataset: [note]}`` naming the classes that had fewer images than ``per_class`` (used whole)."""
    from zoorank.data.splits import short_classes

    notes = {}
    if per_class is None:
        return notes
    for d, imgs in images.items():
        short = short_classes(imgs.labels, per_class, classes=list(imgs.classes))
        if short:
            listed = ", ".join(f"{c!r} {n}" for c, n in list(short.items())[:6])
            more = f" and {len(short) - 6} more" if len(short) > 6 else ""
            notes[d] = [f"{len(short)} of {imgs.n_classes} classes have fewer than {per_class} images in the "
                        f"{split} split and are used whole ({listed}{more}); --per-class is an upper bound"]
    return notes
