"""Text formats of a ranking: ``table`` (plain ASCII, fits the terminal width), ``csv``,
``json`` and ``markdown``. The default view is :func:`zoorank.reporting.summary.compact_view`;
``all_metrics=True`` shows every score column instead."""
from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pandas as pd

from zoorank.reporting import FORMATS
from zoorank.reporting.summary import FIXED_COLUMNS, BaselineChoice, compact_view, recommended_column

__all__ = ["FORMATS", "render", "score_columns"]


def score_columns(table: pd.DataFrame) -> list[str]:
    """The metric columns of a ranking table, in table order."""
    return [c for c in table.columns if c not in FIXED_COLUMNS]


def _view(table, baselines, ties, all_metrics):
    score = recommended_column(table)
    if not all_metrics:
        return compact_view(table, baselines.metrics, score=score, ties=ties), score
    view = compact_view(table, [], score=score, ties=ties)
    full = table.set_index(["dataset", "model"])
    for c in score_columns(table):
        if c not in view:
            view[c] = [full.loc[(d, m), c] for d, m in zip(view["dataset"], view["model"])]
    for c in ("seconds", "cached_stages"):
        if c in full:
            view[c] = [full.loc[(d, m), c] for d, m in zip(view["dataset"], view["model"])]
    return view, score


def fmt_cell(v, tied_mark: str = "*") -> str:
    """One table cell as text: '-' for missing, ``tied_mark`` for True, 4 significant digits."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return tied_mark if v else ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def _headers(view: pd.DataFrame, score: str) -> dict[str, str]:
    names = {"rank": "#", "tied": "tie", score: f"{score.upper() if score == 'lead' else score} score"}
    for c in view.columns:
        if c.endswith("_rank"):
            names[c] = c[:-5]
    return names


def _ascii_table(view: pd.DataFrame, score: str, width: int) -> str:
    """Right-aligned columns, wrapped into blocks of whole columns when wider than ``width``
    (``#`` and ``model`` repeated in every block)."""
    heads = _headers(view, score)
    cols = [c for c in view.columns if c != "dataset"]
    cells = {c: [heads.get(c, c)] + [fmt_cell(v) for v in view[c]] for c in cols}
    widths = {c: max(len(s) for s in cells[c]) for c in cols}
    keep = [c for c in ("rank", "model") if c in cols]
    rest = [c for c in cols if c not in keep]
    blocks, cur = [], []
    base = sum(widths[c] + 2 for c in keep)
    for c in rest:
        if cur and base + sum(widths[x] + 2 for x in cur) + widths[c] + 2 > width:
            blocks.append(cur)
            cur = []
        cur.append(c)
    blocks.append(cur)
    out = []
    for block in blocks:
        shown = keep + block
        for i in range(len(view) + 1):
            line = "  ".join(cells[c][i].ljust(widths[c]) if c == "model" else cells[c][i].rjust(widths[c])
                             for c in shown)
            out.append(line.rstrip())
        out.append("")
    return "\n".join(out).rstrip("\n")


def _dataset_notes(dataset: str, view: pd.DataFrame, score: str, ties: dict, notes: dict) -> list[str]:
    lines = []
    tie = ties.get(dataset)
    if tie is not None and tie.models:
        by = "" if tie.score == score else f" by {tie.score}"   # not the table's order: say whose
        if len(tie.models) == 1:
            lines.append(f"clear winner{by}: {tie.models[0]} comes first in {tie.share[tie.models[0]]:.0%} of "
                         f"{tie.resampled()}")
        else:
            lines.append(f"tie (*){by}: {len(tie.models)} models come first in >= {tie.threshold:.0%} of "
                         f"{tie.resampled()} ({tie.tied_shares()}); the data do not separate them")
        if tie.score != score:
            lines.append(f"(the tie set resamples per-image {tie.score} scores; {score} has none to resample)")
    lines += [f"note: {n}" for n in notes.get(dataset, [])]
    return lines


def _wrap(text: str, width: int) -> str:
    return textwrap.fill(text, width=max(40, width), subsequent_indent="  ", break_on_hyphens=False)


def render(table: pd.DataFrame, fmt: str = "table", *, baselines: BaselineChoice | None = None,
           ties: dict | None = None, notes: dict | None = None, all_metrics: bool = False,
           width: int = 80) -> str:
    """The ranking ``table`` (one row per dataset x model) in ``fmt``; ``ties``:
    ``{dataset: TieSet}``; ``notes``: ``{dataset: [text]}`` (e.g. classes used whole)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    baselines = baselines or BaselineChoice([], {}, "none")
    ties, notes = ties or {}, notes or {}
    view, score = _view(table, baselines, ties, all_metrics)
    if fmt == "csv":
        return view.to_csv(index=False)
    if fmt == "json":
        records = json.loads(view.to_json(orient="records"))
        return json.dumps({"recommended_score": score, "higher_is_better": True,
                           "baselines": {"shown_as_ranks": baselines.metrics, "benchmark_mean_tau": baselines.tau,
                                         "source": baselines.source},
                           "ties": {d: t.as_dict() for d, t in ties.items()}, "notes": notes,
                           "rows": records}, indent=2)
    parts = []
    for dataset, part in view.groupby("dataset", sort=True):
        part = part.reset_index(drop=True)
        title = f"{dataset}: {len(part)} models, best first by {score.upper() if score == 'lead' else score} " \
                "(higher score = better)"
        if fmt == "markdown":
            shown = [c for c in part.columns if c != "dataset"]
            heads = _headers(part, score)
            lines = [f"### {title}", "", "| " + " | ".join(heads.get(c, c) for c in shown) + " |",
                     "|" + "|".join("---:" if c != "model" else "---" for c in shown) + "|"]
            lines += ["| " + " | ".join(fmt_cell(v) for v in row) + " |"
                      for row in part[shown].itertuples(index=False)]
            lines += [""] + [f"- {n}" for n in _dataset_notes(dataset, part, score, ties, notes)]
            parts.append("\n".join(lines))
        else:
            parts.append("\n".join([f"== {title} ==", _ascii_table(part, score, width),
                                    *(_wrap(n, width) for n in _dataset_notes(dataset, part, score, ties, notes))]))
    shown = [m for m in baselines.metrics if m in table]
    if shown and not all_metrics:
        taus = ", ".join(f"{m} {baselines.tau[m]:.2f}" for m in shown)
        foot = (f"{', '.join(shown)}: rank by each baseline (1 = its best), of the {len(baselines.metrics)} "
                f"with the best mean weighted tau on the shipped benchmark ({taus}); --all-metrics shows "
                "every score")
        parts.append("- " + foot if fmt == "markdown" else _wrap(foot, width))
    return "\n\n".join(parts) + "\n"
