"""Fine-tuned ground truth for reports and benchmarks: a table ``dataset, model, accuracy``.

From a DataFrame, a CSV file (``#`` comment lines allowed; an ``accuracy`` column or the named
metric's, e.g. ``test_top1``), or the pair runs of a ground-truth run in MLflow (written by
:mod:`zoorank.orchestration.flows.ground_truth`: tag ``zoorank.kind=gt_pair``, metric
``gt.<metric>``). Reading only: nothing here runs a flow (docs/ground_truth.md).
"""
from __future__ import annotations

import pandas as pd

from zoorank.storage.tracking.tags import KIND_GROUND_TRUTH, KIND_GT_PAIR, TAG_DATASET, TAG_KIND, TAG_MODEL, TAG_PARENT

__all__ = ["load_truth", "load_ground_truth"]


def load_ground_truth(settings, run_id: str | None = None, *, metric: str = "test_top1") -> pd.DataFrame:
    """Ground truth back from MLflow: the pair runs of ``run_id`` (else of the newest ground-truth
    run) -> DataFrame ``dataset, model, accuracy`` (pairs without the metric left out)."""
    from zoorank.storage.tracking import Tracker

    t = Tracker.from_settings(settings)
    if run_id is None:
        runs = t.find_runs({TAG_KIND: KIND_GROUND_TRUTH})
        if not runs:
            raise LookupError(f"no ground-truth run in {t.tracking_uri}; run `zoorank ground-truth` first")
        run_id = runs[0].info.run_id
    pairs = t.find_runs({TAG_KIND: KIND_GT_PAIR, TAG_PARENT: run_id})
    rows = [{"dataset": r.data.tags.get(TAG_DATASET), "model": r.data.tags.get(TAG_MODEL),
             "accuracy": r.data.metrics.get(f"gt.{metric}")} for r in pairs]
    return pd.DataFrame(rows, columns=["dataset", "model", "accuracy"]).dropna()


def load_truth(ground_truth, settings, metric: str = "test_top1") -> pd.DataFrame:
    """DataFrame / CSV path / MLflow ground-truth run id (``"mlflow"`` or None: the newest)
    -> DataFrame ``dataset, model, accuracy``; a table without ``accuracy`` or ``metric`` is
    refused with its columns named."""
    if isinstance(ground_truth, pd.DataFrame):
        df = ground_truth
    elif isinstance(ground_truth, str) and ground_truth.endswith(".csv"):
        df = pd.read_csv(ground_truth, comment="#")
    else:
        return load_ground_truth(settings, None if ground_truth in (None, "mlflow") else ground_truth, metric=metric)
    if "accuracy" not in df:
        if metric not in df:
            raise ValueError(f"ground truth needs an 'accuracy' or {metric!r} column; has {list(df.columns)}")
        df = df.rename(columns={metric: "accuracy"})
    return df[["dataset", "model", "accuracy"]]
