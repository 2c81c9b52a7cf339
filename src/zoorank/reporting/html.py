"""One self-contained HTML page per ranking: inline CSS, images as ``data:`` URIs, no script and
no external URL, so it opens anywhere (a mail attachment, an MLflow artifact view) as it is.

Per dataset: the compact table (recommended order, tie set, LEAD, best baselines' ranks), a
heatmap of the agreement between metrics (Spearman rank correlation of their scores across the
models), the recommended score against fine-tuned accuracy where a ground truth exists, and every
metric's raw score.
"""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from zoorank.reporting.charts import agreement_heatmap, png_data_uri, score_scatter
from zoorank.reporting.render import fmt_cell, score_columns
from zoorank.reporting.summary import best_baselines, compact_view, recommended_column

__all__ = ["write_html_report", "html_report", "agreement"]

CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222;
background:#fff}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}td.model,th.model{text-align:left}
tr.tied td{background:#fff3c4}thead th{background:#eef2f7}
.note{color:#555;font-size:13px}.figs{display:flex;flex-wrap:wrap;gap:16px}img{max-width:100%}
details{margin:8px 0}
"""


def agreement(part: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Spearman rank correlation between the metrics' scores across the models of one dataset
    (pairs of models where both scores exist; at least 3, else NaN)."""
    scores = part[[m for m in metrics if m in part]].apply(pd.to_numeric, errors="coerce")
    return scores.corr(method="spearman", min_periods=3)


def _cell(v) -> str:
    return html.escape(fmt_cell(v, tied_mark="tied"))


def _table(df: pd.DataFrame, table_id: str, tied_col: str | None = "tied") -> str:
    cols = list(df.columns)
    head = "".join(f'<th class="{"model" if c == "model" else ""}">{html.escape(str(c))}</th>' for c in cols)
    body = []
    for _, row in df.iterrows():
        cls = ' class="tied"' if tied_col and bool(row.get(tied_col, False)) else ""
        body.append(f"<tr{cls}>" + "".join(f'<td class="{"model" if c == "model" else ""}">{_cell(row[c])}</td>'
                                            for c in cols) + "</tr>")
    return f'<table id="{html.escape(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def html_report(table: pd.DataFrame, *, ties: dict | None = None, notes: dict | None = None,
                truth: pd.DataFrame | None = None, truth_note: str = "", run_id: str | None = None,
                tracking_uri: str | None = None) -> str:
    """The page as a string (see the module docstring)."""
    ties, notes = ties or {}, notes or {}
    score = recommended_column(table)
    chosen = best_baselines()
    metrics = score_columns(table)
    view = compact_view(table, chosen.metrics, score=score, ties=ties)
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>zoorank ranking {html.escape(run_id or '')}</title><style>{CSS}</style></head><body>",
           "<h1>zoorank: predicted fine-tuning ranking</h1>",
           f'<p class="note">Recommended score: <b>{html.escape(score)}</b> (higher = better). '
           f"Baselines shown as within-dataset ranks: {html.escape(', '.join(chosen.metrics) or 'none')} "
           "(best mean weighted tau on the shipped benchmark)."
           + (f" MLflow run <code>{html.escape(run_id)}</code> at <code>{html.escape(tracking_uri or '')}</code>."
              if run_id else "") + "</p>"]
    for dataset, part in table.groupby("dataset", sort=True):
        part = part.reset_index(drop=True)
        v = view[view["dataset"] == dataset].drop(columns=["dataset"])
        out.append(f"<h2>{html.escape(str(dataset))}: {len(part)} models</h2>")
        out.append(_table(v, f"ranking-{dataset}"))
        tie = ties.get(dataset)
        if tie is not None and tie.models:
            shares = ", ".join(f"{html.escape(m)} {tie.share[m]:.0%}" for m in tie.models)
            out.append(f'<p class="note" id="ties-{html.escape(str(dataset))}">Tied at the top (first in &ge; '
                       f"{tie.threshold:.0%} of {tie.n_boot} bootstrap resamples of the {tie.n_images} scored "
                       f"images, per-image {html.escape(tie.score)} scores): {shares}.</p>")
        for n in notes.get(dataset, []):
            out.append(f'<p class="note">{html.escape(n)}</p>')
        figs = []
        corr = agreement(part, metrics)
        if len(corr) >= 2:
            figs.append(f'<img alt="agreement between metrics" src="{png_data_uri(agreement_heatmap(corr, f"{dataset}: agreement between metrics"))}">')
        t = truth[truth["dataset"] == dataset].set_index("model")["accuracy"] if truth is not None else None
        if t is not None and len(t):
            sc = score_scatter(part, score, t, f"{dataset}: {score} vs fine-tuned accuracy")
            if sc is not None:
                figs.append(f'<img alt="score against ground truth" src="{png_data_uri(sc)}">')
        out.append('<div class="figs">' + "".join(figs) + "</div>")
        if t is not None and len(t) and truth_note:
            out.append(f'<p class="note">{html.escape(truth_note)}</p>')
        full = part[["model", *metrics, *[c for c in ("seconds", "cached_stages") if c in part]]]
        out.append("<details><summary>every metric's raw score</summary>" + _table(full, f"scores-{dataset}", None)
                   + "</details>")
    out.append("</body></html>")
    return "\n".join(out)


def write_html_report(path, table: pd.DataFrame, **kwargs) -> Path:
    """Write :func:`html_report` to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_report(table, **kwargs), encoding="utf-8")
    return path
