"""The zoo's history for the combined ranking (issue 15): past fine-tuning results and the metric
scores those pairs got, read from what zoorank already keeps.

- **Shipped ground truth** (the offline zoo's): ``results/ground_truth/trials.jsonl`` (trial records,
  docs/ground_truth.md) and ``results/ground_truth/metric_scores.csv`` (every metric on those pairs,
  scripts/score_ground_truth_zoo.py). ``ZOORANK_HISTORY=none`` turns it off; a folder holding those two
  files replaces it.
- **The user's ground truth**: the ``gt_trial`` / ``gt_probe`` records in their store (written by
  ``zoorank ground-truth`` and ``zoorank select``; the shorter trials of select's early rounds, listed
  in its ``gt_select`` record, are not taken), and the metric scores of their own past rankings
  (``ranking_scores`` records, one per ranked dataset, written by :func:`record_ranking_scores`).

Accuracy per pair is the ground-truth table's ``test_top1`` (mean over converged seeds,
zoorank.pipeline.ground_truth_records). Rows for one (dataset, model) are resolved newest-first
(the user's records after the shipped ones, the user's by record time): the newest wins and the
overridden rows are kept for the report. The history is matched to a zoo by model id.

Turning records into the table needs the fine-tuning package (torch); the table is therefore
memoised as a store record keyed by the digest of its inputs, so a cached rerun stays torch-free.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SHIPPED_DIR = Path(__file__).resolve().parents[3] / "results" / "ground_truth"
TRIALS_FILE = "trials.jsonl"
SCORES_FILE = "metric_scores.csv"
GT_STAGES = ("gt_trial", "gt_probe")
SELECT_STAGE = "gt_select"   # zoorank select's rounds: their shorter-than-recipe trials are not ground truth
SCORES_STAGE = "ranking_scores"
TABLE_STAGE = "history_table"
TABLE_VERSION = 3   # 2: the shipped rows are the shipped protocol's only; 3: stale blow-ups left out


@dataclass
class History:
    """``accuracy``: dataset, model, accuracy (fraction), source, time; ``scores``: dataset, model,
    metric, score; ``overridden``: accuracy rows that lost to a newer row of the same pair."""

    accuracy: pd.DataFrame
    scores: pd.DataFrame
    overridden: pd.DataFrame
    sources: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.accuracy.empty

    @property
    def datasets(self) -> list[str]:
        return sorted(set(self.accuracy["dataset"]))


ACC_COLUMNS = ["dataset", "model", "accuracy", "source", "time"]
SCORE_COLUMNS = ["dataset", "model", "metric", "score"]


def empty_history(sources=()) -> History:
    return History(pd.DataFrame(columns=ACC_COLUMNS), pd.DataFrame(columns=SCORE_COLUMNS),
                   pd.DataFrame(columns=ACC_COLUMNS), list(sources))


def shipped_dir() -> Path | None:
    """The folder of the shipped history, ``None`` when turned off (``ZOORANK_HISTORY=none``)."""
    env = os.environ.get("ZOORANK_HISTORY")
    if env is not None and env.strip().lower() in ("none", "off", ""):
        return None
    folder = Path(env).expanduser() if env else SHIPPED_DIR
    if env and not (folder / TRIALS_FILE).is_file():
        raise FileNotFoundError(f"ZOORANK_HISTORY={env}: no {TRIALS_FILE} in that folder (set ZOORANK_HISTORY=none "
                                "to rank without the shipped history)")
    return folder if (folder / TRIALS_FILE).is_file() else None


def _record_files(store, stage: str) -> list[Path]:
    folder = store.record_path(f"{stage}/x").parent
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _stores(store) -> list:
    """The writable store and any read-only layers (zoorank.storage.layered.LayeredStore)."""
    layers = getattr(store, "layers", None)
    return [s for s in (layers if layers else [store]) if hasattr(s, "record_path")]


def _gt_files(store) -> list[Path]:
    return [p for s in _stores(store) for stage in (*GT_STAGES, SELECT_STAGE) for p in _record_files(s, stage)]


def _partial_keys(store, files: list[Path]) -> set[str]:
    out: set[str] = set()
    for p in files:
        if p.parent.name == SELECT_STAGE:
            try:
                out.update(store.get_record(f"{SELECT_STAGE}/{p.stem}").get("partial_keys", []))
            except Exception:  # noqa: BLE001 - an unreadable selection record hides nothing
                pass
    return out


def _accuracy_rows(records, source: str, times: dict | None = None, *, shipped: bool = False) -> pd.DataFrame:
    """One accuracy row per pair and budget of ``records``; ``shipped``: only the records of the shipped
    protocol (``finetune.cpu_budget_for(dataset)``; the file also keeps superseded runs, e.g. digits
    at 80 steps, as evidence)."""
    from zoorank.pipeline import ground_truth_records as gtr   # imports the fine-tuning package (torch)

    if shipped:
        records = gtr.shipped_protocol_records(records)
    table = gtr.ground_truth_table(records)
    table = table[table["n_seeds"] > 0]
    out = pd.DataFrame({"dataset": table["dataset"].astype(str), "model": table["model"].astype(str),
                        "accuracy": table["test_top1"].astype(float), "source": source})
    newest = {}
    for key, value in records:
        pair = (value.get("dataset"), value.get("model"))
        newest[pair] = max(newest.get(pair, 0.0), (times or {}).get(key, 0.0))
    out["time"] = [newest.get((d, m), 0.0) for d, m in zip(out["dataset"], out["model"])]
    return out.reset_index(drop=True)


def _accuracy_table(store, folder: Path | None) -> pd.DataFrame:
    """Shipped then user accuracy rows, memoised in the store under the digest of their inputs."""
    files = _gt_files(store)
    h = hashlib.sha256()
    if folder is not None:
        h.update((folder / TRIALS_FILE).read_bytes())
    for p in files:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    from zoorank.storage.keys import content_key

    key = content_key(TABLE_STAGE, stage_version=TABLE_VERSION, inputs=h.hexdigest())
    try:
        return pd.DataFrame(store.get_record(key)["rows"], columns=ACC_COLUMNS)
    except Exception:  # noqa: BLE001 - not memoised yet (CacheMiss) or unreadable: recompute
        pass
    frames = []
    if folder is not None:
        from zoorank.pipeline import ground_truth_records as gtr

        frames.append(_accuracy_rows(gtr.read_records(folder / TRIALS_FILE), "shipped", shipped=True))
    if files:
        records, times = [], {}
        partial = _partial_keys(store, files)
        for p in files:
            key_ = f"{p.parent.name}/{p.stem}"
            if p.parent.name == SELECT_STAGE or key_ in partial:
                continue
            try:
                value = store.get_record(key_)
            except Exception:  # noqa: BLE001 - a damaged record is skipped (the store reports it)
                continue
            if isinstance(value, dict) and "dataset" in value:
                records.append((key_, value))
                times[key_] = p.stat().st_mtime
        if records:
            frames.append(_accuracy_rows(records, "your store", times))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ACC_COLUMNS)
    try:
        store.put_record(key, {"rows": json.loads(rows.to_json(orient="records"))})
    except Exception:  # noqa: BLE001 - a read-only store: computed again next time
        pass
    return rows


def _score_table(store, folder: Path | None) -> pd.DataFrame:
    frames = []
    if folder is not None and (folder / SCORES_FILE).is_file():
        shipped = pd.read_csv(folder / SCORES_FILE, comment="#")
        missing = set(SCORE_COLUMNS) - set(shipped.columns)
        if missing:
            raise ValueError(f"{folder / SCORES_FILE}: missing column(s) {sorted(missing)}")
        frames.append(shipped[SCORE_COLUMNS])
    for layer in _stores(store):
        for p in _record_files(layer, SCORES_STAGE):
            try:
                value = layer.get_record(f"{SCORES_STAGE}/{p.stem}")
                frames.append(pd.DataFrame(value["rows"], columns=SCORE_COLUMNS))
            except Exception:  # noqa: BLE001 - a damaged or foreign record is skipped
                continue
    if not frames:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    scores = pd.concat(frames, ignore_index=True)
    return scores.drop_duplicates(["dataset", "model", "metric"], keep="last").reset_index(drop=True)


def load_history(store) -> History:
    """The history a ranking learns from: the shipped ground truth plus the user's (see module doc)."""
    from zoorank.metrics.combine import dedupe_history

    folder = shipped_dir()
    acc = _accuracy_table(store, folder)
    sources = ([f"shipped ground truth ({folder / TRIALS_FILE})"] if folder is not None else []) + (
        ["your store's ground-truth records"] if (acc["source"] == "your store").any() else [])
    if acc.empty:
        return History(pd.DataFrame(columns=ACC_COLUMNS), _score_table(store, folder),
                       pd.DataFrame(columns=ACC_COLUMNS), sources)
    acc = acc.assign(_source_order=(acc["source"] != "shipped").astype(int))
    acc = acc.sort_values(["_source_order", "time"], kind="stable").drop(columns="_source_order")
    kept, overridden = dedupe_history(acc.drop(columns="time").reset_index(drop=True))
    kept = kept.merge(acc[["dataset", "model", "source", "time"]].drop_duplicates(["dataset", "model", "source"],
                                                                                   keep="last"),
                      on=["dataset", "model", "source"], how="left")
    return History(kept.reset_index(drop=True), _score_table(store, folder), overridden.reset_index(drop=True),
                   sources)


def record_ranking_scores(store, table: pd.DataFrame, metrics) -> None:
    """Keep each ranked dataset's per-pair metric scores as a ``ranking_scores`` record, so that
    ground truth added later for those pairs can train the combination (best effort)."""
    from zoorank.storage.keys import content_key

    cols = [m for m in metrics if m in table]
    for dataset, part in table.groupby("dataset"):
        long = part[["model", *cols]].melt(id_vars="model", var_name="metric", value_name="score")
        long = long[np.isfinite(pd.to_numeric(long["score"], errors="coerce"))]
        long.insert(0, "dataset", dataset)
        rows = json.loads(long[SCORE_COLUMNS].to_json(orient="records"))
        key = content_key(SCORES_STAGE, stage_version=1, dataset=str(dataset), rows=rows)
        try:
            if not store.has_record(key):
                store.put_record(key, {"dataset": str(dataset), "rows": rows, "time": time.time()})
        except Exception:  # noqa: BLE001 - a read-only store keeps nothing
            pass
