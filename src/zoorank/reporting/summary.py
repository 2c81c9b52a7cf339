"""The compact answer: models in the recommended order with the recommended score, the tie set,
LEAD, and the baselines that measured best on the shipped benchmark as within-dataset ranks.

* Recommended score: ``combined`` when the table has that column (with a finite value), else
  ``lead`` (:func:`recommended_column`).
* Baselines shown: the three with the best mean weighted Kendall tau in the shipped benchmark
  table ``results/benchmark/tables/full.csv`` (:func:`best_baselines`), read at run time so that
  regenerating the benchmark changes what is shown. ``ZOORANK_BENCHMARK_TABLE`` points elsewhere.
  Their raw scores live on incomparable scales, so they are shown as ranks (1 = predicted best).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["recommended_column", "best_baselines", "BaselineChoice", "compact_view", "within_ranks",
           "BENCHMARK_TABLE"]

#: the shipped benchmark table (metric x dataset weighted tau, with a ``mean`` column)
BENCHMARK_TABLE = Path(__file__).resolve().parents[3] / "results" / "benchmark" / "tables" / "full.csv"
FIXED_COLUMNS = ("dataset", "rank", "model", "seconds", "cached_stages", "failed", "table")


def recommended_column(table: pd.DataFrame) -> str:
    """``"combined"`` when the table holds a finite combined score, else the configured ranking
    metric (``config.DEFAULT_RANK_BY``, LEAD) when it was scored, else the first metric column
    (a ranking of chosen metrics only, e.g. ``--metrics knn``, ranks by its first metric)."""
    from zoorank.config import DEFAULT_RANK_BY

    if "combined" in table and np.isfinite(pd.to_numeric(table["combined"], errors="coerce")).any():
        return "combined"
    if DEFAULT_RANK_BY in table:
        return DEFAULT_RANK_BY
    scored = [c for c in table.columns if c not in FIXED_COLUMNS and pd.api.types.is_numeric_dtype(table[c])]
    return scored[0] if scored else DEFAULT_RANK_BY


@dataclass(frozen=True)
class BaselineChoice:
    """The baselines shown, their mean weighted tau and where that came from."""

    metrics: list[str]
    tau: dict[str, float]
    source: str


def best_baselines(n: int = 3, table_path: str | os.PathLike | None = None,
                   exclude: tuple[str, ...] = ("lead", "combined")) -> BaselineChoice:
    """The ``n`` metrics (not LEAD / combined) with the best mean weighted tau in the shipped
    benchmark table. No table: an empty choice whose ``source`` says so."""
    path = Path(table_path or os.environ.get("ZOORANK_BENCHMARK_TABLE") or BENCHMARK_TABLE)
    if not path.is_file():
        return BaselineChoice([], {}, f"no benchmark table at {path}")
    full = pd.read_csv(path, index_col=0)
    if "mean" not in full:
        raise ValueError(f"benchmark table {path} has no 'mean' column (columns: {list(full.columns)})")
    mean = pd.to_numeric(full["mean"], errors="coerce").dropna()
    mean = mean[[m for m in mean.index if m not in exclude]].sort_values(ascending=False, kind="stable")
    top = list(mean.index[:n])
    return BaselineChoice(top, {m: float(mean[m]) for m in top}, str(path))


def within_ranks(values: pd.Series) -> pd.Series:
    """Ranks inside one dataset, 1 = highest score; NaN stays missing (nullable Int64)."""
    return pd.to_numeric(values, errors="coerce").rank(ascending=False, method="min").astype("Int64")


def compact_view(table: pd.DataFrame, baselines: list[str], *, score: str | None = None,
                 ties: dict | None = None) -> pd.DataFrame:
    """One row per (dataset, model) in the recommended order: ``dataset, rank, model, <score>,
    tied, [lead], <baseline ranks>...``. ``ties``: ``{dataset: TieSet}``."""
    score = score or recommended_column(table)
    rows = []
    for dataset, part in table.groupby("dataset", sort=True):
        part = part.copy()
        part["rank"] = within_ranks(part[score])
        part = part.sort_values(["rank", "model"], na_position="last", kind="stable")
        tie = (ties or {}).get(dataset)
        out = pd.DataFrame({"dataset": dataset, "rank": part["rank"].array, "model": part["model"].to_numpy(),
                            score: part[score].to_numpy(float)})
        out["tied"] = [bool(tie is not None and m in tie.models) for m in out["model"]]
        if score != "lead" and "lead" in part:
            out["lead"] = part["lead"].to_numpy(float)
        for b in baselines:
            if b in part:
                out[f"{b}_rank"] = within_ranks(part[b]).array
        rows.append(out)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
