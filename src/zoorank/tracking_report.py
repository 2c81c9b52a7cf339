"""Log a finished ranking to MLflow (parent run + nested run per pair) and read it back."""
from __future__ import annotations

import re

import pandas as pd

from zoorank.config import Settings
from zoorank.faults import kill_point
from zoorank.pipeline import PairOutcome, logical_key
from zoorank.stages import SubsetSpec


def log_ranking(settings: Settings, outcomes: list[PairOutcome], table: pd.DataFrame, *,
                subset: SubsetSpec, metrics: list[str], params: dict, new_run: bool = False) -> str:
    """One parent run per logical ranking (a rerun of the same ranking reuses it unless
    ``new_run``), a finished nested run per (model, dataset) with every score, per-stage
    timings and cache hits, and the table (CSV + plot) per dataset as artifacts."""
    from zoorank.storage.tracking import Tracker

    tracker = Tracker.from_settings(settings)
    models = {o.model: {"identity": o.identity} for o in outcomes}
    datasets = {o.dataset: {"fingerprint": o.keys["labels"]} for o in outcomes}
    key = logical_key(list(models.values()), list(datasets.values()), subset, metrics, params)
    name = f"rank {len(models)} models x {', '.join(sorted(datasets))}"
    run_params = {"subset": subset.as_dict(), "metrics": ",".join(metrics), "models": ",".join(sorted(models)),
                  "datasets": ",".join(sorted(datasets)), **params}
    with tracker.start_ranking(name, run_params, {"datasets": ",".join(sorted(datasets))},
                               logical_key=key, reuse=not new_run) as parent:
        if parent.was_finished:
            return parent.run_id
        for i, o in enumerate(outcomes):
            if i == len(outcomes) // 2:
                kill_point("mlflow")
            parent.log_pair(o.model, o.dataset, params={"identity": o.identity, **{
                f"failed.{m}": why[:240] for m, why in o.errors.items()}},
                scores=o.scores, timings=o.timings, cache_hits=o.cache_hits)
        for dataset, part in table.groupby("dataset"):
            parent.log_table(part.reset_index(drop=True), name=re.sub(r"[^A-Za-z0-9_-]+", "_", f"ranking_{dataset}"),
                             score_column="lead" if "lead" in part else None, label_column="model")
    return parent.run_id


def load_ranking(settings: Settings, run_id: str) -> tuple[pd.DataFrame, list[str]]:
    """The ranking table(s) logged under ``run_id`` and the metric columns they hold."""
    from zoorank.storage.tracking import Tracker

    table = Tracker.from_settings(settings).find_ranking(run_id)
    fixed = {"dataset", "rank", "model", "seconds", "cached_stages", "failed", "table"}
    return table, [c for c in table.columns if c not in fixed]
