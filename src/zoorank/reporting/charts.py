"""Every chart zoorank draws, in one style.

One plotting style: matplotlib's object API (``matplotlib.figure.Figure`` rendered by the Agg
canvas: no ``pyplot``, no global figure state, safe on worker threads), the same colours (one
accent colour, grey for missing values, black for means), a light grid and labelled axes. A
function builds a figure; :func:`save_png` writes it to a file and :func:`png_data_uri` inlines it
in HTML. Callers: the ranking's MLflow table (:func:`ranking_chart`, logged next to
``rankings/<name>.csv``), the benchmark report (:func:`tau_bars`, :func:`score_scatter_panels`) and
the HTML ranking page (:func:`agreement_heatmap`, :func:`score_scatter`).
"""
from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

ACCENT = "#3a6ea5"     # bars and points
MISSING = "#bbbbbb"    # a bar with no value (NaN score)
MEAN = "black"         # the mean over datasets
GRID_ALPHA = 0.3
DPI = 100

__all__ = ["ranking_chart", "ranking_bars", "tau_bars", "score_scatter", "score_scatter_panels",
           "agreement_heatmap", "save_png", "png_data_uri"]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def save_png(fig, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` as a PNG file; returns the path."""
    fig.savefig(path, format="png", dpi=dpi)
    return Path(path)


def png_data_uri(fig, dpi: int = DPI) -> str:
    """``data:image/png;base64,...`` of ``fig`` (self-contained HTML)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _annotate(ax, names, xs, ys, fontsize: int = 7) -> None:
    for name, x, y in zip(names, xs, ys):
        ax.annotate(str(name), (x, y), fontsize=fontsize, xytext=(3, 2), textcoords="offset points")


# ------------------------------------------------------------------ ranking table (MLflow artifact)
def ranking_bars(table: pd.DataFrame, score_column: str | None = None, label_column: str | None = None,
                 title: str = "ranking"):
    """Horizontal bars of ``score_column`` (default: ``lead`` if numeric, else the first numeric
    column) per ``label_column`` (default ``model``), best on top, NaN as a grey zero-length bar;
    labels get ``@ dataset`` when the table spans several datasets. None when nothing is numeric."""
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    if score_column is None:
        lower = {str(c).lower(): c for c in numeric}
        score_column = lower.get("lead", numeric[0] if numeric else None)
    if score_column is None or score_column not in table.columns:
        return None
    if label_column is None:
        label_column = "model" if "model" in table.columns else None
    labels = (table[label_column] if label_column else pd.Series(table.index)).astype(str).tolist()
    if "dataset" in table.columns and table["dataset"].nunique() > 1:
        labels = [f"{m} @ {d}" for m, d in zip(labels, table["dataset"].astype(str), strict=True)]
    values = pd.to_numeric(table[score_column], errors="coerce").astype(float).tolist()

    def rank(i: int) -> tuple[bool, float]:  # best first, NaN last
        v = values[i]
        return (math.isnan(v), 0.0 if math.isnan(v) else -v)

    order = sorted(range(len(values)), key=rank)[::-1]  # barh draws bottom-up: best on top
    fig = _figure(7.0, 1.2 + 0.32 * max(1, len(values)))
    ax = fig.add_subplot()
    ax.barh([labels[i] for i in order], [0.0 if math.isnan(values[i]) else values[i] for i in order],
            color=[MISSING if math.isnan(values[i]) else ACCENT for i in order])
    ax.set_xlabel(str(score_column))
    ax.set_title(title)
    ax.grid(axis="x", alpha=GRID_ALPHA)
    fig.tight_layout()
    return fig


def ranking_chart(score_column: str | None = None, label_column: str | None = None, title: str | None = None):
    """A ``chart`` for :meth:`zoorank.storage.tracking.Tracker.log_ranking_table`: draws
    :func:`ranking_bars` of the table into the path it is given (None when nothing to plot)."""
    def chart(table: pd.DataFrame, out: Path) -> Path | None:
        fig = ranking_bars(table, score_column, label_column, title or Path(out).stem)
        return None if fig is None else save_png(fig, out)

    return chart


# ------------------------------------------------------------------ benchmark report
def tau_bars(full: pd.DataFrame):
    """Grouped bars of weighted tau per metric (LEAD first) and dataset, the mean in black.
    ``full``: metric x dataset table with ``mean`` (and ``n_datasets``) columns."""
    ds = [c for c in full.columns if c not in ("mean", "n_datasets")]
    metrics = list(full.index)
    if "lead" in metrics:
        metrics = ["lead"] + [m for m in metrics if m != "lead"]
    fig = _figure(max(8.0, 0.6 * len(metrics) * max(1, len(ds)) / 2.5), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(ds) + 1)
    x = np.arange(len(metrics))
    for i, d in enumerate([*ds, "mean"]):
        vals = full.loc[metrics, d].to_numpy(float)
        ax.bar(x + i * width, np.nan_to_num(vals), width, label=d, color=MEAN if d == "mean" else None, alpha=0.85)
    ax.set_xticks(x + width * len(ds) / 2)
    ax.set_xticklabels(metrics, rotation=45, ha="right")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("weighted Kendall tau")
    ax.set_title("Weighted tau vs fine-tuned accuracy, per metric and dataset")
    ax.grid(axis="y", alpha=GRID_ALPHA)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def _scatter_on(ax, rows: pd.DataFrame, score: str, truth: pd.Series, title: str, fontsize: int = 9) -> None:
    y = truth.loc[rows["model"]].to_numpy(float)
    ax.scatter(rows[score], y, s=20, color=ACCENT)
    _annotate(ax, rows["model"], rows[score], y, fontsize=max(6, fontsize - 2))
    ax.set_xlabel(f"{score} score (higher = predicted better)", fontsize=fontsize - 1)
    ax.set_ylabel("fine-tuned test accuracy", fontsize=fontsize - 1)
    ax.set_title(title, fontsize=fontsize)
    ax.grid(alpha=GRID_ALPHA)


def score_scatter_panels(scores: pd.DataFrame, truth: pd.Series, metrics: list[str], taus: dict[str, float],
                         title: str):
    """One panel per metric of ``metrics``: its score against fine-tuned accuracy (``truth``:
    model -> accuracy), titled with the metric's weighted tau from ``taus``."""
    n = len(metrics)
    cols = max(1, min(3, n))
    rows = int(np.ceil(n / cols)) if n else 1
    fig = _figure(4.6 * cols, 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        sub = scores[scores["model"].isin(truth.index)][["model", m]].dropna()
        _scatter_on(ax, sub, m, truth, f"{m} (weighted tau {taus.get(m, np.nan):.2f})")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ HTML ranking page
def score_scatter(part: pd.DataFrame, score: str, truth: pd.Series, title: str):
    """``score`` of the models of one dataset against their fine-tuned accuracy; None with fewer
    than two models that have both."""
    rows = part[part["model"].isin(truth.index)][["model", score]].dropna()
    if len(rows) < 2:
        return None
    fig = _figure(5.2, 4.0)
    _scatter_on(fig.add_subplot(), rows, score, truth, title, fontsize=10)
    fig.tight_layout()
    return fig


def agreement_heatmap(corr: pd.DataFrame, title: str):
    """Spearman correlations between metrics as a -1..1 heatmap with the values written in."""
    n = len(corr)
    fig = _figure(1.6 + 0.42 * n, 1.2 + 0.42 * n)
    ax = fig.add_subplot()
    im = ax.imshow(corr.to_numpy(float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), corr.columns, rotation=90, fontsize=8)
    ax.set_yticks(range(n), corr.index, fontsize=8)
    for i in range(n):
        for j in range(n):
            v = corr.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(v) > 0.6 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="Spearman rho")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
