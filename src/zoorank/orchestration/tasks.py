"""Prefect tasks: thin wrappers over ``zoorank.pipeline.stages`` that pass keys and small values.

Caching is done by the content-keyed Zarr store (``zoorank.pipeline.stages``), not by Prefect's
result cache: a task that finds its verified output reports a cache hit and returns at
once, so a rerun after a crash (even ``kill -9``) recomputes only unfinished stages, and a
deleted or damaged array is recomputed instead of being trusted (docs/stack.md warns that a
Prefect-cached task returns its old path even when the folder is gone).
"""
from __future__ import annotations

from dataclasses import asdict

from prefect import task
from prefect.cache_policies import NO_CACHE

from zoorank.reporting import progress

from zoorank.pipeline import stages
from zoorank.config import Settings
from zoorank.storage.arrays import ArrayStore


def _store(settings: Settings) -> ArrayStore:
    """The settings' store, behind their read-only ``read_store`` when one is set."""
    from zoorank.storage.layered import open_store

    return open_store(settings)


@task(name="prepare-dataset", cache_policy=NO_CACHE)
def prepare_dataset(dataset_id: str, subset: stages.SubsetSpec, data_root: str | None = None) -> dict:
    """Load a dataset, select the scored subset; return its fingerprint and size."""
    from zoorank.pipeline.pairs import load_subset

    images = load_subset(dataset_id, subset, data_root)
    return {"dataset": dataset_id, "fingerprint": images.fingerprint(), "n": len(images),
            "n_classes": int(images.n_classes), "classes": list(images.classes)}


@task(name="resolve-model", cache_policy=NO_CACHE)
def resolve_model(settings: Settings, spec) -> dict:
    """Identity of a backbone for cache keys: model id + digest of its weights (memoised)."""
    from zoorank.pipeline.pairs import model_identity

    return model_identity(spec, _store(settings))


@task(name="extract-features", cache_policy=NO_CACHE)
def extract_features(settings: Settings, spec, model: dict, dataset: dict, subset: stages.SubsetSpec,
                     data_root: str | None = None, device: str = "cpu", batch_size: int = 64) -> dict:
    from zoorank.pipeline.pairs import load_backbone, load_subset

    keys = stages.feature_keys(model["identity"], dataset["fingerprint"], model["has_outputs"])
    result = stages.ensure_features(
        _store(settings), keys, lambda: load_backbone(spec, device),
        load_subset(dataset["dataset"], subset, data_root), batch_size=batch_size, device=device)
    progress.stage_done(f'{model["model"]} / {dataset["dataset"]}', result)
    return {"keys": asdict(keys), "result": asdict(result), "pair": f'{model["model"]} / {dataset["dataset"]}'}


def _report(features: dict, result: stages.StageResult, label: str | None = None) -> dict:
    progress.stage_done(features["pair"] + (f" [{label}]" if label else ""), result)
    return asdict(result)


@task(name="svm-loginit", cache_policy=NO_CACHE)
def svm_loginit(settings: Settings, features: dict, params: dict, device: str = "cpu") -> dict:
    keys = stages.FeatureKeys(**features["keys"])
    return _report(features, stages.ensure_svm_logits(_store(settings), keys, params, device=device))


@task(name="ntk-eigenvalues", cache_policy=NO_CACHE)
def ntk_eigenvalues(settings: Settings, features: dict, params: dict, device: str = "cpu") -> dict:
    keys = stages.FeatureKeys(**features["keys"])
    return _report(features, stages.ensure_ntk_eigenvalues(_store(settings), keys, params, device=device))


@task(name="score", cache_policy=NO_CACHE)
def score(settings: Settings, metrics: list[str], features: dict, metric_params: dict,
          svm: dict | None = None, ntk: dict | None = None) -> dict:
    """Score ``metrics`` on one pair's cached inputs: ``{metric: StageResult dict}``.

    The rank flow submits two per pair, LEAD (after its SVM and NTK stages) and the baselines
    (straight after the features): one task per metric cost about 6 ms of Prefect
    orchestration each, more than most baselines' own work on a cache hit.
    """
    store = _store(settings)
    keys = stages.FeatureKeys(**features["keys"])
    lead_inputs = (svm["key"], ntk["key"]) if svm and ntk else None
    pair_inputs: dict = {}          # arrays read and statistics shared once for the pair's metrics
    return {m: _report(features, stages.ensure_score(store, m, keys, params=metric_params.get(m, {}),
                                                     lead_inputs=lead_inputs if m == "lead" else None,
                                                     pair_inputs=pair_inputs), m)
            for m in metrics}
