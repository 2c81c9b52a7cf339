"""Glue between the zoo, the datasets and the stages, shared by the Prefect tasks, the
direct (Prefect-free) runner and the CLI: loading specs, model identities, the ranking table.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from zoorank.pipeline import stages
from zoorank.storage.arrays import ArrayStore
from zoorank.storage.keys import content_digest

def default_metrics() -> list[str]:
    """LEAD first, then the baselines, in the registry's order."""
    from zoorank.metrics.registry import METRICS

    return list(METRICS)


@functools.lru_cache(maxsize=8)
def _load_dataset(dataset_id: str, data_root: str | None):
    from zoorank.data import load_dataset

    # --data-root locates torchvision datasets; the offline ids know where their files are
    root = data_root if dataset_id.startswith(("torchvision:", "imagefolder")) else None
    return load_dataset(dataset_id, root=root)


def load_subset(dataset_id: str, subset: stages.SubsetSpec, data_root: str | None = None):
    """The scored images of ``dataset_id`` (datasets are memoised per process)."""
    return stages.select_subset(_load_dataset(dataset_id, data_root), subset)


def load_backbone(spec, device: str = "cpu"):
    from zoorank.zoo import load_model

    return load_model(spec, device=device)


def spec_id(spec) -> str:
    return spec if isinstance(spec, str) else spec.id


def model_identity(spec, store: ArrayStore | None = None) -> dict:
    """``{"model", "identity", "has_outputs", "feature_dim"}``: id + weights digest + config digest.

    Memoised in ``store`` by weight-file stat (``zoorank.pipeline.identity``): a cached rerun does not
    load the backbone at all; on a cache miss the features stage loads it.
    """
    from zoorank.pipeline.identity import model_identity as memoised_identity

    return memoised_identity(spec, store, load_backbone=load_backbone)


@dataclass
class PairOutcome:
    """Everything the ranking table and MLflow need about one (model, dataset) pair."""

    model: str
    dataset: str
    identity: str
    scores: dict = field(default_factory=dict)      # metric -> float
    errors: dict = field(default_factory=dict)      # metric -> reason it failed
    skipped: dict = field(default_factory=dict)     # metric -> why it does not apply
    timings: dict = field(default_factory=dict)     # stage -> seconds
    cache_hits: dict = field(default_factory=dict)  # stage -> bool (scores: count of hits)
    keys: dict = field(default_factory=dict)


def collect_pair(model: dict, dataset: dict, features: dict, stage_results: list[dict],
                 score_results: dict[str, dict]) -> PairOutcome:
    """Fold stage results (dicts of StageResult) into a PairOutcome."""
    out = PairOutcome(model["model"], dataset["dataset"], model["identity"], keys=features["keys"])
    for res in [features["result"], *stage_results]:
        out.timings[res["stage"]] = res["seconds"]
        out.cache_hits[res["stage"]] = res["cache_hit"]
    out.timings["score"] = sum(r["seconds"] for r in score_results.values())
    out.cache_hits["score"] = sum(bool(r["cache_hit"]) for r in score_results.values())
    for metric, res in score_results.items():
        if "score" in res["info"]:
            out.scores[metric] = float(res["info"]["score"])
        elif "skipped" in res["info"]:
            out.skipped[metric] = res["info"]["skipped"]
        else:
            out.errors[metric] = res["info"].get("error", "unknown error")
    return out


def ranking_table(pairs: list[PairOutcome], metrics: list[str], rank_by: str = "lead") -> pd.DataFrame:
    """One row per (dataset, model): scores of every metric, the rank by ``rank_by`` within
    its dataset (1 = predicted best), seconds spent and stages served from cache."""
    rows = []
    for p in pairs:
        row = {"dataset": p.dataset, "model": p.model}
        row.update({m: p.scores.get(m, np.nan) for m in metrics})
        row["seconds"] = round(sum(p.timings.values()), 3)
        row["cached_stages"] = sum(int(v) for v in p.cache_hits.values())  # score: a count of hits
        row["failed"] = ";".join(f"{m}: {why}" for m, why in sorted(p.errors.items()))
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    key = rank_by if rank_by in df else metrics[0]
    df["rank"] = df.groupby("dataset")[key].rank(ascending=False, method="min", na_option="bottom").astype(int)
    df = df.sort_values(["dataset", "rank", "model"]).reset_index(drop=True)
    return df[["dataset", "rank", "model", *metrics, "seconds", "cached_stages", "failed"]]


def logical_key(models: list[dict], datasets: list[dict], subset: stages.SubsetSpec,
                metrics: list[str], params: dict) -> str:
    """Identity of a ranking (same inputs -> same key): used to avoid duplicate MLflow runs."""
    return content_digest("ranking", models=sorted(m["identity"] for m in models),
                          datasets=sorted(d["fingerprint"] for d in datasets), subset=subset.as_dict(),
                          metrics=sorted(metrics), params=params)


def run_pair_direct(store: ArrayStore, spec, dataset_id: str, subset: stages.SubsetSpec, metrics: list[str],
                    metric_params: dict | None = None, lead_params: stages.LeadParams | None = None,
                    device: str = "cpu", data_root: str | None = None) -> PairOutcome:
    """One pair through every stage without Prefect (same functions the tasks call)."""
    from dataclasses import asdict

    lead_params = lead_params or stages.LeadParams()
    images = load_subset(dataset_id, subset, data_root)
    model = model_identity(spec, store)
    dataset = {"dataset": dataset_id, "fingerprint": images.fingerprint()}
    keys = stages.feature_keys(model["identity"], dataset["fingerprint"], model["has_outputs"])
    feat = stages.ensure_features(store, keys, lambda: load_backbone(spec, device), images, device=device)
    features = {"keys": asdict(keys), "result": asdict(feat)}
    svm = asdict(stages.ensure_svm_logits(store, keys, lead_params.svm, device=device))
    ntk = asdict(stages.ensure_ntk_eigenvalues(store, keys, lead_params.ntk, device=device))
    scores, pair_inputs = {}, {}
    for m in metrics:
        lead_inputs = (svm["key"], ntk["key"]) if m == "lead" else None
        scores[m] = asdict(stages.ensure_score(store, m, keys, params=(metric_params or {}).get(m, {}),
                                               lead_inputs=lead_inputs, pair_inputs=pair_inputs))
    return collect_pair(model, dataset, features, [svm, ntk], scores)
