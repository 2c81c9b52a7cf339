"""Ground-truth trial records: export / import as JSON lines, and the table written from them.

A trial record (``gt_trial/<digest>``) and a linear-probe record (``gt_probe/<digest>``) are store
records (``ArrayStore.put_record``) whose value carries its pair's identity (``model``,
``dataset``, ``identity``, ``data_fingerprint``, ``budget``, ``recipe``, ``split_seed``). One line
of an export file is ``{"key": <store key>, "value": <record value>}``, sorted by key, so a ground
truth computed over several runs or machines merges by importing every export into one store: an
imported record is found by the flow exactly like one it computed (nothing is retrained).

:func:`ground_truth_table` turns records into the shipped table, one row per pair
(:func:`zoorank.compute.finetune.pair_ground_truth`; stale blow-ups left out, :func:`current_records`), and :func:`write_table` writes it as CSV under a
``#`` header naming the protocol, the command and the compute spent.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pandas as pd

from zoorank.compute.finetune import SE_TARGET, Budget, cpu_budget_for, pair_ground_truth, stale_divergence

RECORD_STAGES = ("gt_trial", "gt_probe")
PAIR_FIELDS = ("dataset", "model", "identity", "data_fingerprint", "split_seed", "recipe")
TABLE_COLUMNS = ["dataset", "model", "test_top1", "se", "se_seeds", "se_test", "n_test", "n_seeds",
                 "test_mean_class", "val_top1", "lp_test_top1", "lp_val_top1", "lp_C", "best_lr", "best_wd",
                 "converged", "val_change_last20", "val_se", "n_trials", "n_diverged", "chance",
                 "trial_seconds", "probe_seconds", "input_size", "note"]

def record_seconds(record: dict | None) -> float:
    """A trial's or probe's compute: the CPU time of its thread (``cpu_seconds``, recorded since
    2026-12-03), else its wall time (``seconds``: inflated on a loaded machine); 0 without a record."""
    if not record:
        return 0.0
    cpu = record.get("cpu_seconds")
    return float(cpu) if cpu else float(record.get("seconds", 0.0))


def se_note(gt: dict, n_classes: int, test_per_class: int | None) -> str:
    """Why a pair's SE exceeds :data:`SE_TARGET` ("" when it does not): test-set noise (and whether
    the test split already holds every test image the dataset gives at this split) or seed spread."""
    se = float(gt.get("se", math.nan))
    if not math.isfinite(se) or se <= SE_TARGET:
        return ""
    se_seeds = float(gt.get("se_seeds", math.nan))
    head = f"SE {100 * se:.2f} pts > {100 * SE_TARGET:g}"
    if float(gt["se_test"]) >= (se_seeds if math.isfinite(se_seeds) else 0.0):
        n, cap = int(gt["n_test"]), (test_per_class or 0) * n_classes
        whole = f", below the cap of {cap}: every test image the dataset gives at this split" if n < cap else ""
        return f"{head}, mostly test-set noise (n_test {n}{whole})"
    return f"{head}, mostly seed spread ({gt['n_seeds']} seeds, SE over seeds {100 * se_seeds:.1f} pts)"


def store_records(store, stages=RECORD_STAGES) -> list[tuple[str, dict]]:
    """(key, value) of every ground-truth record in ``store`` (an ArrayStore), sorted by key."""
    out = []
    for stage in stages:
        for key in store.list_records(stage):
            out.append((key, store.get_record(key)))
    return sorted(out, key=lambda kv: kv[0])


def export_records(store, path: str | os.PathLike) -> int:
    """Write every ground-truth record of ``store`` to ``path`` (JSON lines, atomically); returns
    the number of records."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = store_records(store)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for key, value in records:
            fh.write(json.dumps({"key": key, "value": value}, sort_keys=True, allow_nan=True) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return len(records)


def read_records(path: str | os.PathLike) -> list[tuple[str, dict]]:
    """(key, value) pairs of an export file; ValueError naming the file and line when malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trial records file {path} does not exist")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: not a JSON line ({exc})") from None
        key = doc.get("key") if isinstance(doc, dict) else None
        if not isinstance(key, str) or key.split("/", 1)[0] not in RECORD_STAGES or not isinstance(
                doc.get("value"), dict):
            raise ValueError(f"{path}:{n}: expected {{\"key\": \"gt_trial/...\" or \"gt_probe/...\", "
                             f"\"value\": {{...}}}}, got {line[:80]!r}")
        out.append((key, doc["value"]))
    return out


def import_records(store, path: str | os.PathLike) -> dict:
    """Put every record of ``path`` into ``store`` unless the store already has that key (a store's
    own record wins; a differing one is counted as a conflict). Returns counts."""
    counts = {"imported": 0, "present": 0, "conflicts": 0}
    for key, value in read_records(path):
        if store.has_record(key):
            same = json.dumps(store.get_record(key), sort_keys=True) == json.dumps(value, sort_keys=True)
            counts["present" if same else "conflicts"] += 1
            continue
        store.put_record(key, value)
        counts["imported"] += 1
    return counts


def _pair_id(value: dict) -> tuple:
    return tuple(json.dumps(value.get(f), sort_keys=True) for f in PAIR_FIELDS) + (
        json.dumps(value.get("budget"), sort_keys=True),)


def current_records(records) -> list[tuple[str, dict]]:
    """``records`` without the trials whose recorded loss blow-up the current divergence rule does
    not see (``finetune.stale_divergence``): a rerun retrains those it still needs; the others (an
    lr / 10 retry that is no longer needed) describe no trial of the current recipe."""
    return [(k, v) for k, v in records
            if not (k.startswith("gt_trial/") and v.get("budget") and
                    stale_divergence(v, Budget.from_dict(v["budget"])))]


def shipped_protocol_records(records) -> list[tuple[str, dict]]:
    """The records of the shipped CPU protocol (``finetune.cpu_budget_for(dataset)``: 80 steps, digits
    160); the shipped file also keeps superseded runs (digits at 80 steps) as evidence."""
    return [(k, v) for k, v in records if v.get("budget") == cpu_budget_for(str(v.get("dataset"))).as_dict()]


def ground_truth_table(records, *, budget: dict | None = None, identities=None, datasets=None) -> pd.DataFrame:
    """One row per pair from (key, value) records (trials and probes), optionally only those of
    ``budget`` (a ``Budget.as_dict()``), model ``identities`` (``model_identity(spec)["identity"]``:
    id, weights and config such as ``input_size``) and ``datasets``."""
    pairs: dict[tuple, dict] = {}
    for key, value in current_records(records):
        if budget is not None and value.get("budget") != budget:
            continue
        if identities is not None and value.get("identity") not in identities:
            continue
        if datasets is not None and value.get("dataset") not in datasets:
            continue
        entry = pairs.setdefault(_pair_id(value), {"trials": [], "probe": None, "meta": value})
        if key.startswith("gt_probe/"):
            entry["probe"] = value
        else:
            entry["trials"].append(value)
    rows = []
    for entry in pairs.values():
        meta, trials, probe = entry["meta"], entry["trials"], entry["probe"]
        gt = pair_ground_truth(trials, probe)
        k = int(meta.get("n_classes") or 0)
        notes = []
        if gt["n_seeds"] == 0:
            notes.append("every trial diverged" if trials else "no trial yet")
        elif k and gt["test_top1"] <= 1.0 / k + gt["se"]:
            notes.append("within 1 SE of chance")
        if gt["n_diverged"]:
            notes.append(f"diverged: {', '.join(d['reason'] for d in gt['diverged'])}")
        notes.append(se_note(gt, k, (meta.get("budget") or {}).get("test_per_class")))
        note = "; ".join(filter(None, notes))
        rows.append({"dataset": meta.get("dataset"), "model": meta.get("model"), **{c: gt.get(c) for c in TABLE_COLUMNS
                                                                                   if c in gt},
                     "chance": 1.0 / k if k else math.nan,
                     "trial_seconds": round(sum(record_seconds(t) for t in trials), 2),
                     "probe_seconds": round(record_seconds(probe), 2),
                     "input_size": "x".join(map(str, (trials or [probe or {}])[0].get("input_size", []))),
                     "note": note})
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return df.sort_values(["dataset", "model"], kind="stable").reset_index(drop=True)


def write_table(df: pd.DataFrame, path: str | os.PathLike, header_lines) -> None:
    """``df`` as CSV under ``# `` header lines (protocol, command, compute), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    total = float(df["trial_seconds"].sum() + df["probe_seconds"].sum()) if len(df) else 0.0
    lines = [*header_lines, f"Compute spent: {total:.0f} s of single-threaded trial + probe time "
                            f"({total / 3600:.2f} CPU-hours) over {len(df)} pairs (thread CPU time where "
                            f"recorded, wall time for the records before 2026-12-03)"]
    write_commented_csv(df, path, lines, float_format="%.4f")


def write_commented_csv(df: pd.DataFrame, path, header_lines, *, float_format: str) -> None:
    """``df`` as CSV under ``# `` header lines, published atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for line in header_lines:
            fh.write(f"# {line}\n")
        df.to_csv(fh, index=False, float_format=float_format)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def rank_agreement(shipped: pd.DataFrame, longer: pd.DataFrame, *, column: str = "test_top1") -> pd.DataFrame:
    """Kendall's tau (scipy's tau-b) per dataset between two ground-truth tables over their common
    models: the issue's convergence check (a longer run on a sample of pairs should keep tau >= 0.8
    with the shipped ranks). Rows: dataset, n_models, kendall."""
    from scipy.stats import kendalltau

    rows = []
    merged = shipped[["dataset", "model", column]].merge(longer[["dataset", "model", column]],
                                                         on=["dataset", "model"], suffixes=("_a", "_b")).dropna()
    for dataset, part in merged.groupby("dataset", sort=True):
        tau = kendalltau(part[f"{column}_a"], part[f"{column}_b"]).statistic if len(part) > 1 else math.nan
        rows.append({"dataset": dataset, "n_models": len(part), "kendall": float(tau)})
    return pd.DataFrame(rows, columns=["dataset", "n_models", "kendall"])
