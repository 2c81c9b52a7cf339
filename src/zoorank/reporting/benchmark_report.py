"""Benchmark report: Markdown + HTML with tables and PNG plots (:mod:`zoorank.reporting.charts`).

``write_report(result, out_dir, settings=None)`` takes the dict of
:func:`zoorank.orchestration.flows.benchmark.benchmark_flow` and writes into ``out_dir``:

* ``report.md`` and ``report.html`` -- full-data weighted tau (metric x dataset + mean), the other
  measures, low-data mean +- std, LEAD ablations, and every note (missing ground truth, failed
  metrics, undefined tau);
* ``tau_bars.png`` -- weighted tau per metric per dataset (grouped bars, LEAD first);
* ``scatter_<dataset>.png`` -- metric score vs fine-tuned accuracy, one panel per metric shown
  (LEAD and the best baselines), points labelled with model names;
* ``tables/*.csv`` -- the tables as CSV;
* with ``result["bootstrap"]`` (:mod:`zoorank.reporting.benchmark_bootstrap`, per ground truth
  ``finetune`` / ``probe``): mean weighted tau and top-1 / top-3 regret with 90% CIs, LEAD's paired
  comparison with each baseline, the line saying where LEAD loses; with ``result["compute_ratio"]``:
  ranking compute against fine-tuning compute.

With ``settings`` the folder is also logged as artifacts of an MLflow run (tag
``zoorank.kind=benchmark``).
"""
from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd


def _fmt(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    return df.apply(lambda c: c.map(lambda v: "" if (isinstance(v, float) and np.isnan(v)) else
                                    (f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else v)))


def md_table(df: pd.DataFrame, digits: int = 3, index: bool = True) -> str:
    d = _fmt(df.reset_index() if index else df, digits)
    cols = [str(c) for c in d.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in d.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def _plots(result: dict, tables: dict, out: Path) -> list[str]:
    """``tau_bars.png`` and one ``scatter_<dataset>.png`` per dataset with ground truth
    (:mod:`zoorank.reporting.charts`); returns the file names written."""
    from zoorank.reporting.charts import save_png, score_scatter_panels, tau_bars

    files = []
    full = tables["full"]
    if len(full):
        save_png(tau_bars(full), out / "tau_bars.png", dpi=110)
        files.append("tau_bars.png")
    truth = pd.DataFrame(result["truth"])
    for d, recs in result["scores"].items():
        sc = pd.DataFrame(recs)
        t = truth[truth["dataset"] == d].set_index("model")["accuracy"] if len(truth) else pd.Series(dtype=float)
        if sc.empty or t.empty:
            continue
        shown = ["lead"] + [m for m in full.index if m != "lead"][:5] if len(full) else ["lead"]
        shown = [m for m in shown if m in sc]
        taus = {m: full.loc[m, d] if (m in full.index and d in full.columns) else np.nan for m in shown}
        name = f"scatter_{d}.png"
        save_png(score_scatter_panels(sc, t, shown, taus, f"{d}: metric score vs fine-tuned accuracy"), out / name)
        files.append(name)
    return files


_TRUTHS = {"finetune": "the fine-tuned accuracy", "probe": "the linear-probe accuracy (second ground truth)"}


def _bootstrap_parts(result: dict) -> list[str]:
    """Markdown of the error-bar tables (per ground truth) and of the compute ratio."""
    parts = []
    if "compute_ratio" in result:
        r = result["compute_ratio"]
        tot = r.loc["total"]
        parts += ["## Compute: ranking the zoo against fine-tuning it (target <= 1%)", "",
                  f"Over {int(tot['n_pairs'])} pairs: the cold ranking's per-pair stage seconds are "
                  f"{tot['ratio_pair_seconds']:.2%} of the ground truth's trial + probe seconds, the ranking "
                  f"process's CPU time {tot['ratio_cpu']:.2%} (target <= 1%: "
                  f"{'met' if tot['ratio_cpu'] <= 0.01 else 'not met'} by CPU time)."
                  + (f" Against the literature's protocol (`--preset full`: the 20-point grid and two more seeds, "
                     f"5,000 steps of batch 64), projected from the same trials' measured seconds per training "
                     f"image (`full_seconds`, evaluation not counted: a lower bound), the ranking costs "
                     f"{tot['ratio_cpu_full']:.4%} (`ratio_cpu_full`). The CPU protocol trains 3-6 epochs; the "
                     f"ratio against it is the honest figure on this machine, the projection the one the "
                     f"product is meant for." if "ratio_cpu_full" in r else ""), "",
                  md_table(r.assign(**({"ratio_cpu_full": r["ratio_cpu_full"].map(lambda v: f"{v:.2e}")}
                                       if "ratio_cpu_full" in r else {})), digits=4), ""]
    for name, sec in result.get("bootstrap", {}).items():
        tabs = sec["tables"]
        parts += [f"## Error bars against {_TRUTHS.get(name, name)}", "", f"**Where LEAD loses.** {sec['loses']}", "",
                  "### Mean weighted tau with 90% CI", "", md_table(tabs["tau"]), "",
                  "### Top-1 and top-3 regret (mean over datasets, as a fraction of test images: 0.01 = 1 point) "
                  "with 90% CI", "",
                  md_table(tabs["regret"]), "",
                  "### LEAD against each baseline (paired: the same draws; `lead_wins` = share of draws in "
                  "which LEAD's mean tau is higher; CI of the difference)", "", md_table(tabs["paired"]), ""]
    return parts


def render_markdown(result: dict, tables: dict, images: list[str], header: str = "") -> str:
    parts = ["# Benchmark: transferability metrics vs fine-tuned accuracy", ""]
    if header:
        parts += [header, ""]
    parts += _bootstrap_parts(result)
    parts += ["## Full data: weighted Kendall tau (metric x dataset, mean over datasets)", "",
              md_table(tables["full"]), ""]
    if "tau_bars.png" in images:
        parts += ["![tau per metric per dataset](tau_bars.png)", ""]
    for m in ("kendall_tau", "pearson", "top1_regret", "top3_regret"):
        if f"full_{m}" in tables:
            parts += [f"### {m}", "", md_table(tables[f"full_{m}"]), ""]
    if "low" in tables:
        parts += ["## Low data: weighted tau, mean over datasets of the mean over subsets (std: mean over "
                  "datasets of the std over subsets)", "", md_table(tables["low"]), ""]
    if "ablation" in tables:
        parts += ["## LEAD ablations (weighted tau; one option changed from the defaults at a time)", "",
                  md_table(tables["ablation"]), ""]
    notes = [(d, n) for d, ns in result.get("notes", {}).items() for n in ns]
    per = result.get("per_dataset", {})
    metric_notes = [(d, r["metric"], r["note"]) for d, rs in per.items() for r in rs if r.get("note")]
    if notes or metric_notes:
        parts += ["## Notes (missing ground truth, failed metrics, undefined tau)", ""]
        parts += [f"- {d}: {n}" for d, n in notes]
        parts += [f"- {d} / {m}: {n}" for d, m, n in metric_notes]
        parts.append("")
    for img in images:
        if img.startswith("scatter_"):
            parts += [f"![{img}]({img})", ""]
    return "\n".join(parts)


def _html(md: str) -> str:
    """Minimal Markdown -> HTML for the report's own output (headings, tables, images, lists)."""
    out, in_table, in_list = [], False, False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                out.append("<table border=1 cellspacing=0 cellpadding=3>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{html.escape(line[2:])}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            out.append(f'<p><img src="{html.escape(src)}" style="max-width:100%"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    if in_list:
        out.append("</ul>")
    return "<!doctype html><meta charset='utf-8'><title>zoorank benchmark</title>\n" + "\n".join(out)


def write_report(result: dict, out_dir, *, settings=None, header: str = "") -> dict:
    """Write the report folder (see module docstring); returns paths and the MLflow run id."""
    from zoorank.reporting.benchmark_tables import summary_tables

    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    tables = summary_tables(result)
    for name, t in tables.items():
        t.to_csv(out / "tables" / f"{name}.csv")
    for d, recs in result["per_dataset"].items():
        pd.DataFrame(recs).to_csv(out / "tables" / f"dataset_{d}.csv", index=False)
    for name, sec in result.get("bootstrap", {}).items():
        for kind, t in sec["tables"].items():
            t.to_csv(out / "tables" / f"ci_{kind}_{name}.csv")
    if "compute_ratio" in result:
        result["compute_ratio"].to_csv(out / "tables" / "compute_ratio.csv")
    images = _plots(result, tables, out)
    md = render_markdown(result, tables, images, header)
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(_html(md))
    run_id = None
    if settings is not None:
        from zoorank.storage.tracking import Tracker

        t = Tracker.from_settings(settings)
        run = t.client.create_run(t.experiment_id, run_name="benchmark",
                                  tags={"zoorank.kind": "benchmark", "zoorank.datasets": ",".join(result["datasets"])})
        run_id = run.info.run_id
        full = tables["full"]
        if len(full):
            t.log_run(run_id, metrics={f"tau.{m}.mean": v for m, v in full["mean"].items() if np.isfinite(v)})
        t.client.log_artifacts(run_id, os.fspath(out), "benchmark")
        t.end_run(run_id)
    return {"folder": str(out), "markdown": str(out / "report.md"), "html": str(out / "report.html"),
            "images": images, "run_id": run_id}
