"""What a ranking reports about its pairs: one :class:`PairOutcome` per (model, dataset), the
ranking table, and the parameters that enter the ranking's logical key (the key itself:
``zoorank.storage.tracking.values.ranking_key``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from zoorank.config import DEFAULT_RANK_BY
from zoorank.pipeline.stages import FeatureKeys, StageResult, SubsetSpec

__all__ = ["PairOutcome", "RankOutput", "collect_pair", "ranking_table", "default_metrics", "ranking_params"]


def default_metrics() -> list[str]:
    """Every registered metric, in the registry's order (the recommended one first)."""
    from zoorank.metrics.registry import METRICS

    return list(METRICS)


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
    upstream: dict = field(default_factory=dict)    # metric -> {keyword: key of its upstream output}

    def feature_keys(self) -> FeatureKeys:
        """The keys of the pair's stored arrays (``keys`` holds them as a plain dict for MLflow)."""
        return FeatureKeys(**self.keys)


@dataclass
class RankOutput:
    """What a ranking returns (the rank flow and the cached path alike): the table as records,
    the MLflow parent run (``None`` untracked), every pair's outcome, the tie sets as dicts."""

    table: list[dict]
    run_id: str | None
    pairs: list[PairOutcome]
    ties: dict[str, dict] = field(default_factory=dict)
    combined: dict[str, dict] = field(default_factory=dict)        # issue 15: per dataset, what `combined` is
    combined_notes: dict[str, list] = field(default_factory=dict)  # issue 15: its notes for the output


def collect_pair(model: dict, dataset: dict, keys: dict, stage_results: list[StageResult],
                 score_results: dict[str, StageResult], upstream: dict | None = None) -> PairOutcome:
    """Fold a pair's stage results (features first, then its upstream stages) and its scores into a
    PairOutcome; two runs of one stage name (other parameters) add their times."""
    out = PairOutcome(model["model"], dataset["dataset"], model["identity"], keys=dict(keys),
                      upstream=dict(upstream or {}))
    for res in stage_results:
        out.timings[res.stage] = out.timings.get(res.stage, 0.0) + res.seconds
        out.cache_hits[res.stage] = out.cache_hits.get(res.stage, True) and res.cache_hit
    out.timings["score"] = sum(r.seconds for r in score_results.values())
    out.cache_hits["score"] = sum(bool(r.cache_hit) for r in score_results.values())
    for metric, res in score_results.items():
        if "score" in res.info:
            out.scores[metric] = float(res.info["score"])
        elif "skipped" in res.info:
            out.skipped[metric] = res.info["skipped"]
        else:
            out.errors[metric] = res.info.get("error", "unknown error")
    return out


def ranking_table(pairs: list[PairOutcome], metrics: list[str], rank_by: str = DEFAULT_RANK_BY) -> pd.DataFrame:
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


def ranking_params(metric_params: dict, stage_params: dict, metrics: list[str] | None = None) -> dict:
    """The parameters that enter a ranking's logical key (MLflow run reuse): with ``metrics``,
    the code versions of their scores and upstream stages too, so that a metric whose results
    changed gets a new run instead of the old, finished one being reported."""
    from zoorank.metrics import registry as metric_registry

    params = {"metric_params": dict(metric_params), "stage_params": dict(stage_params)}
    if metrics is not None:
        specs = [metric_registry.get_metric(m) for m in metrics]
        params["metric_versions"] = {s.name: s.version for s in specs}
        params["stage_versions"] = {u.name: u.version for s in specs for u in s.upstream}
    return params
