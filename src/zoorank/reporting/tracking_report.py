"""Log a ranking to MLflow (parent run + nested run per pair) and read it back.

Parent run: tags ``zoorank.kind=ranking``, ``zoorank.datasets``, ``zoorank.zoo``,
``zoorank.metric_versions`` (``metric=version,...``), ``zoorank.recommended``; per-model metrics
``<dataset>.<model>.<metric>`` and ``<dataset>.<model>.rank``; the table per dataset as CSV + bar
plot (``rankings/``) and as an MLflow logged table (``tables/ranking_<dataset>.json``, which the
UI's "Evaluation" / artifact view renders); the tie sets (``ties.json``). The run is opened before
the pairs run (:func:`open_ranking`) so that an interrupted ranking is marked KILLED.
"""
from __future__ import annotations

import contextlib
import json
import re

import pandas as pd

from typing import TYPE_CHECKING

from zoorank.config import Settings
from zoorank.storage.tracking.tags import TAG_LOGICAL_KEY
from zoorank.storage.tracking.values import ranking_key as _ranking_key
from zoorank.support.faults import kill_point

if TYPE_CHECKING:  # types only: reporting does not import the pipeline
    from zoorank.pipeline.outcomes import PairOutcome
    from zoorank.pipeline.stages import SubsetSpec

TIES_ARTIFACT = "ties.json"
REPORT_ARTIFACT = "report"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


def metric_versions(metrics: list[str]) -> str:
    from zoorank.metrics.registry import get_metric

    return ",".join(f"{m}={get_metric(m).version}" for m in metrics)


def ranking_key(models: dict[str, str], datasets: dict[str, str], subset: SubsetSpec, metrics: list[str],
                params: dict) -> str:
    """Logical key of a ranking (same inputs -> same key): ``models`` id -> identity,
    ``datasets`` id -> labels key."""
    return _ranking_key(models.values(), datasets.values(), subset, metrics, params)


def open_ranking(settings: Settings, models: dict[str, str], datasets: dict[str, str], *, subset: SubsetSpec,
                 metrics: list[str], params: dict, new_run: bool = False, zoo: str | None = None):
    """The parent run of a ranking (``models``: id -> identity; ``datasets``: id -> labels key),
    reused when the same logical ranking was logged before unless ``new_run``. Returns a
    :class:`zoorank.storage.tracking.RankingRun` (a context manager: FINISHED, FAILED or
    KILLED on Ctrl-C)."""
    from zoorank.storage.tracking import Tracker

    tracker = Tracker.from_settings(settings)
    key = ranking_key(models, datasets, subset, metrics, params)
    name = f"rank {len(models)} models x {', '.join(sorted(datasets))}"
    run_params = {"subset": subset.as_dict(), "metrics": ",".join(metrics), "models": ",".join(sorted(models)),
                  "datasets": ",".join(sorted(datasets)), **params}
    tags = {"datasets": ",".join(sorted(datasets)), "zoorank.datasets": ",".join(sorted(datasets)),
            "zoorank.zoo": zoo or ",".join(sorted(models)), "zoorank.metric_versions": metric_versions(metrics),
            "zoorank.per_class": "all" if subset.per_class is None else str(subset.per_class)}
    return tracker.start_ranking(name, run_params, tags, logical_key=key, reuse=not new_run)


def log_ranking(settings: Settings, outcomes: list[PairOutcome], table: pd.DataFrame, *,
                subset: SubsetSpec, metrics: list[str], params: dict, new_run: bool = False,
                ties: dict | None = None, run=None, zoo: str | None = None) -> str:
    """Log a finished ranking: a finished nested run per (model, dataset) with every score,
    per-stage timings and cache hits; per-model metrics, the table (CSV + plot + logged table)
    and the tie sets on the parent. ``run``: a parent opened by :func:`open_ranking` (closed
    here); otherwise one is opened. A parent that had already finished is left as it was."""
    if run is None:
        models = {o.model: o.identity for o in outcomes}
        datasets = {o.dataset: o.keys["labels"] for o in outcomes}
        run = open_ranking(settings, models, datasets, subset=subset, metrics=metrics, params=params,
                           new_run=new_run, zoo=zoo)
    key = ranking_key({o.model: o.identity for o in outcomes}, {o.dataset: o.keys["labels"] for o in outcomes},
                      subset, metrics, params)
    with run as parent:
        if not parent.was_finished:
            for i, o in enumerate(outcomes):
                if i == len(outcomes) // 2:
                    kill_point("mlflow")
                parent.log_pair(o.model, o.dataset, params={"identity": o.identity, **{
                    f"failed.{m}": why[:240] for m, why in o.errors.items()}},
                    scores=o.scores, timings=o.timings, cache_hits=o.cache_hits)
            _log_parent(parent, table, metrics, ties or {})
    remember_run(settings, key, parent.run_id)
    return parent.run_id


# ------------------------------------------------------------------ a logged ranking, found without MLflow
# A fully cached rerun of a ranking that is already logged has nothing to log; finding its run
# through MLflow costs more than the rest of the rerun (importing mlflow + SQLAlchemy and opening
# the store: ~3 s of the ~7 s measured). So the store remembers which run logged which logical
# ranking at which tracking URI, and the run is checked directly: the SQLite file with the
# standard library, or one REST call to a tracking server.

def _memo_key(settings: Settings, key: str) -> str:
    from zoorank.storage.keys import content_key

    return content_key("ranking_run", stage_version=1, logical_key=key, tracking_uri=settings.tracking_uri,
                       experiment=settings.experiment)


def remember_run(settings: Settings, key: str, run_id: str) -> None:
    """Record that ``run_id`` holds the finished ranking ``key`` (best effort)."""
    from zoorank.storage.arrays import ArrayStore

    try:
        ArrayStore(settings.store).put_record(_memo_key(settings, key), {"run_id": run_id, "logical_key": key})
    except Exception:  # noqa: BLE001 - a read-only store: the next rerun asks MLflow instead
        pass


def _run_status_sqlite(uri: str, run_id: str, key: str) -> bool:
    import sqlite3
    from pathlib import Path

    db = Path(uri[len("sqlite:///"):].split("?", 1)[0])
    if not db.is_file():
        return False
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
        row = con.execute("SELECT r.status, r.lifecycle_stage, t.value FROM runs r JOIN tags t "
                          "ON t.run_uuid = r.run_uuid AND t.key = ? WHERE r.run_uuid = ?",
                          (TAG_LOGICAL_KEY, run_id)).fetchone()
    return row is not None and row[0] == "FINISHED" and row[1] == "active" and row[2] == key


def _run_status_http(uri: str, run_id: str, key: str) -> bool:
    import urllib.parse
    import urllib.request

    url = uri.rstrip("/") + "/api/2.0/mlflow/runs/get?" + urllib.parse.urlencode({"run_id": run_id})
    with urllib.request.urlopen(url, timeout=5) as resp:
        run = json.loads(resp.read())["run"]
    tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
    return (run["info"]["status"] == "FINISHED" and run["info"].get("lifecycle_stage") == "active"
            and tags.get(TAG_LOGICAL_KEY) == key)


def known_finished_run(settings: Settings, key: str) -> str | None:
    """The run that already holds the finished ranking ``key`` at this tracking URI, checked
    without importing MLflow; ``None`` when unknown, gone, unfinished or not checkable."""
    from zoorank.storage.arrays import ArrayStore, CacheMiss, CorruptEntry

    try:
        run_id = ArrayStore(settings.store).get_record(_memo_key(settings, key))["run_id"]
    except (CacheMiss, CorruptEntry, KeyError, TypeError):
        return None
    uri = settings.tracking_uri
    try:
        if uri.startswith("sqlite:///"):
            ok = _run_status_sqlite(uri, run_id, key)
        elif uri.startswith(("http://", "https://")):
            ok = _run_status_http(uri, run_id, key)
        else:
            return None
    except Exception:  # noqa: BLE001 - any doubt: ask MLflow the ordinary way
        return None
    return run_id if ok else None


def _log_parent(parent, table: pd.DataFrame, metrics: list[str], ties: dict) -> None:
    from zoorank.reporting.charts import ranking_chart
    from zoorank.reporting.summary import recommended_column, within_ranks

    tracker = parent.tracker
    score = recommended_column(table)
    per_model = {}
    for dataset, part in table.groupby("dataset"):
        ranks = within_ranks(part[score])
        for (_, row), r in zip(part.iterrows(), ranks):
            prefix = f"{_safe(dataset)}.{_safe(row['model'])}"
            per_model.update({f"{prefix}.{m}": float(row[m]) for m in metrics if pd.notna(row.get(m))})
            if pd.notna(r):
                per_model[f"{prefix}.rank"] = float(r)
        name = _safe(f"ranking_{dataset}")
        part = part.reset_index(drop=True)
        parent.log_table(part, name=name, chart=ranking_chart(score if score in part else None, "model", name))
        tracker.client.log_table(parent.run_id, data=part, artifact_file=f"tables/{name}.json")
    tracker.log_metrics(parent.run_id, per_model)
    tracker.log_run(parent.run_id, tags={"zoorank.recommended": score})
    tracker.client.log_dict(parent.run_id, {d: t.as_dict() for d, t in ties.items()}, TIES_ARTIFACT)


def load_ranking(settings: Settings, run_id: str) -> tuple[pd.DataFrame, list[str]]:
    """The ranking table(s) logged under ``run_id`` and the metric columns they hold."""
    from zoorank.storage.tracking import Tracker

    table = Tracker.from_settings(settings).find_ranking(run_id)
    fixed = {"dataset", "rank", "model", "seconds", "cached_stages", "failed", "table"}
    return table, [c for c in table.columns if c not in fixed]


def load_ties(settings: Settings, run_id: str) -> dict:
    """``{dataset: TieSet}`` logged with the run (empty for runs logged before tie sets)."""
    from zoorank.reporting.ties import TieSet
    from zoorank.storage.tracking import Tracker

    import tempfile

    tracker = Tracker.from_settings(settings)
    if TIES_ARTIFACT not in [f.path for f in tracker.client.list_artifacts(run_id)]:
        return {}
    with tempfile.TemporaryDirectory(prefix="zoorank-ties-") as tmp:
        with open(tracker.client.download_artifacts(run_id, TIES_ARTIFACT, dst_path=tmp)) as fh:
            data = json.load(fh)
    return {d: TieSet.from_dict(t) for d, t in data.items()}


def log_report(settings: Settings, run_id: str, path) -> str:
    """Log the HTML report file to the run as ``report/<name>``; returns the artifact path."""
    from pathlib import Path

    from zoorank.storage.tracking import Tracker

    Tracker.from_settings(settings).client.log_artifact(run_id, str(path), artifact_path=REPORT_ARTIFACT)
    return f"{REPORT_ARTIFACT}/{Path(path).name}"


SHIPPED_TRUTH = "results/ground_truth.csv"


def report_truth(settings: Settings, ground_truth: str | None, datasets: list[str]):
    """Fine-tuned accuracies for the report: ``(DataFrame dataset, model, accuracy | None, note)``.

    ``auto``: the shipped reduced-budget ground truth (``results/ground_truth.csv``) when it
    covers one of ``datasets``, else none; ``none``: none; otherwise what
    :func:`zoorank.reporting.truth.load_truth` accepts (a CSV, an MLflow run id, ``mlflow``).
    """
    from pathlib import Path

    if ground_truth in (None, "none"):
        return None, ""
    if ground_truth == "auto":
        path = Path(__file__).resolve().parents[3] / SHIPPED_TRUTH
        if not path.is_file():
            return None, ""
        df = pd.read_csv(path, comment="#")
        df = df.rename(columns={"test_top1": "accuracy"}) if "accuracy" not in df else df
        df = df[df["dataset"].isin(datasets)][["dataset", "model", "accuracy"]]
        note = (f"ground truth: {SHIPPED_TRUTH}, the shipped reduced-budget CPU fine-tuning (see its header); "
                "noisy, not the literature's protocol")
        return (df, note) if len(df) else (None, "")
    from zoorank.reporting.truth import load_truth

    df = load_truth(ground_truth, settings)
    return df[df["dataset"].isin(datasets)], f"ground truth: {ground_truth}"
