"""Prefect tasks: thin wrappers over the pipeline's stage functions that pass keys and small typed
values (``zoorank.pipeline.stages``, ``zoorank.pipeline.upstream``).

Caching is done by the content-keyed Zarr store, not by Prefect's result cache: a task that finds
its verified output reports a cache hit and returns at once, so a rerun after a crash (even
``kill -9``) recomputes only unfinished stages, and a deleted or damaged array is recomputed
instead of being trusted (a Prefect-cached task would return its old path even when the folder is
gone, docs/caching.md). One generic task runs any metric's upstream stage (``upstream-stage``).
"""
from __future__ import annotations

from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from zoorank.config import Settings
from zoorank.pipeline import stages
from zoorank.pipeline.requests import RunOptions
from zoorank.pipeline.sources import PairSource
from zoorank.pipeline.upstream import MetricPlan, PairRef, StagePlan, distinct_stages, ensure_upstream
from zoorank.reporting import progress
from zoorank.storage.arrays import ArrayStore


@dataclass(frozen=True)
class PairFeatures:
    """What the features task hands on: the pair (keys and identities) and its stage result."""

    pair: PairRef
    result: stages.StageResult


def _store(settings: Settings) -> ArrayStore:
    """The settings' store, behind their read-only ``read_store`` when one is set."""
    from zoorank.storage.layered import open_store

    return open_store(settings)


@task(name="prepare-dataset", cache_policy=NO_CACHE)
def prepare_dataset(dataset_id: str, subset: stages.SubsetSpec, data_root: str | None = None) -> dict:
    """Load a dataset, select the scored subset; return its fingerprint and size."""
    from zoorank.pipeline.sources import load_subset

    images = load_subset(dataset_id, subset, data_root)
    return {"dataset": dataset_id, "fingerprint": images.fingerprint(), "n": len(images),
            "n_classes": int(images.n_classes), "classes": list(images.classes)}


@task(name="resolve-model", cache_policy=NO_CACHE)
def resolve_model(settings: Settings, spec) -> dict:
    """Identity of a backbone for cache keys: model id + digest of its weights (memoised)."""
    from zoorank.pipeline.sources import model_identity

    return model_identity(spec, _store(settings))


@task(name="extract-features", cache_policy=NO_CACHE)
def extract_features(settings: Settings, source: PairSource, model: dict, dataset: dict,
                     options: RunOptions) -> PairFeatures:
    keys = stages.feature_keys(model["identity"], dataset["fingerprint"], model["has_outputs"])
    result = stages.ensure_features(_store(settings), keys, lambda: source.load_backbone(options.device),
                                    source.images(), batch_size=options.batch_size, device=options.device)
    label = f'{model["model"]} / {dataset["dataset"]}'
    progress.stage_done(label, result)
    return PairFeatures(PairRef(keys, model["identity"], dataset["fingerprint"], label), result)


@task(name="upstream-stage", cache_policy=NO_CACHE, task_run_name="{plan.stage.name}")
def upstream_stage(settings: Settings, plan: StagePlan, features: PairFeatures, source: PairSource,
                   device: str = "cpu") -> stages.StageResult:
    """Any metric's declared upstream stage on one pair (cached under its own content key)."""
    result = ensure_upstream(_store(settings), plan, features.pair, device=device, sources=source)
    progress.stage_done(features.pair.label, result)
    return result


@task(name="score", cache_policy=NO_CACHE)
def score(settings: Settings, plans: list[MetricPlan], features: PairFeatures,
          upstream: list[stages.StageResult]) -> dict[str, stages.StageResult]:
    """Score the metrics of ``plans`` on one pair's cached inputs: ``{metric: StageResult}``;
    ``upstream``: the results of ``distinct_stages(plans)``, in that order.

    The rank flow submits one per group of metrics sharing their upstream stages (the baselines
    straight after the features): one task per metric cost about 6 ms of Prefect orchestration
    each, more than most baselines' own work on a cache hit.
    """
    store = _store(settings)
    done = {s.ident: r.key for s, r in zip(distinct_stages(plans), upstream)}
    shared: dict = {}          # arrays read and statistics shared once for the pair's metrics
    out = {}
    for p in plans:
        res = stages.ensure_score(store, p.metric, features.pair.keys, params=dict(p.score_params),
                                  upstream={s.stage.keyword: done[s.ident] for s in p.stages}, pair_inputs=shared)
        progress.stage_done(f"{features.pair.label} [{p.metric}]", res)
        out[p.metric] = res
    return out
