"""Benchmark tables: a metric's ranking against fine-tuned ground truth, per dataset and averaged.

Pure table building (pandas + :mod:`zoorank.metrics.evaluation`), shared by the benchmark flow
(:mod:`zoorank.orchestration.flows.benchmark`), its report (:mod:`zoorank.reporting.benchmark_report`)
and the CLI: weighted Kendall tau (``scipy.stats.weightedtau`` defaults), Kendall tau-b, Pearson,
top-1 and top-3 regret per metric (docs/science.md, "Evaluation").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from zoorank.metrics import evaluation

MEASURES = ("weighted_tau", "kendall_tau", "pearson", "top1_regret", "top3_regret")


def _reasons(scores: pd.DataFrame, column: str) -> dict[str, dict[str, str]]:
    """``{metric: {model: why}}`` from a column of ``"metric: why; metric: why"`` texts."""
    out: dict[str, dict[str, str]] = {}
    if column in scores:
        for model, text in zip(scores["model"], scores[column].fillna("")):
            for part in filter(None, (p.strip() for p in str(text).split(";"))):
                m, _, why = part.partition(":")
                out.setdefault(m.strip(), {})[model] = why.strip()
    return out


def evaluate_scores(scores: pd.DataFrame, truth: pd.DataFrame, metrics: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """One dataset: ``scores`` (model, one column per metric, optional ``failed`` and ``skipped``
    "m: why; ...") vs
    ``truth`` (model, accuracy) -> one row per metric with the measures, ``n_models`` and ``note``;
    plus the dataset-level notes (missing ground truth)."""
    notes = []
    truth = truth.dropna(subset=["accuracy"]).drop_duplicates("model", keep="last").set_index("model")["accuracy"]
    missing = sorted(set(scores["model"]) - set(truth.index))
    if missing:
        notes.append(f"ground truth missing for {len(missing)} model(s): {', '.join(missing)}; "
                     "measures use the other models")
    failed, skipped = _reasons(scores, "failed"), _reasons(scores, "skipped")
    rows = []
    have = scores[scores["model"].isin(truth.index)]
    for m in metrics:
        row = {"metric": m}
        sub = have[["model", m]].copy() if m in have else have[["model"]].assign(**{m: np.nan})
        bad = sub[~np.isfinite(sub[m].astype(float))]
        sub = sub[np.isfinite(sub[m].astype(float))]
        note = []
        if len(bad):
            not_applicable = skipped.get(m, {})
            if not_applicable:
                why = sorted(set(not_applicable.values()))
                note.append(f"not applicable to {len(not_applicable)} model(s) ({'; '.join(why)}): "
                            f"{', '.join(not_applicable)}")
            failures = [f"{x} ({failed.get(m, {}).get(x, 'no score')})" for x in bad["model"]
                        if x not in not_applicable]
            if failures:
                note.append(f"failed on {len(failures)} model(s): {'; '.join(failures)}")
        row["n_models"] = len(sub)
        if len(sub) < evaluation.MIN_MODELS:
            row.update({k: np.nan for k in MEASURES})
            note.append(f"tau undefined: {len(sub)} model(s) with score and ground truth "
                        f"(at least {evaluation.MIN_MODELS} needed)")
        else:
            s = sub[m].to_numpy(float)
            a = truth.loc[sub["model"]].to_numpy(float)
            row.update(evaluation.evaluate_ranking(s, a))
            if np.ptp(s) == 0 or np.ptp(a) == 0:
                note.append("tau undefined: " + ("scores" if np.ptp(s) == 0 else "accuracies")
                            + " constant across models")
        row["note"] = "; ".join(note)
        rows.append(row)
    return pd.DataFrame(rows, columns=["metric", "n_models", *MEASURES, "note"]), notes


def mean_table(per_dataset: dict[str, pd.DataFrame], measure: str = "weighted_tau") -> pd.DataFrame:
    """metric x dataset table of ``measure`` plus the mean over datasets (NaN-skipping, counted)."""
    if not per_dataset:
        return pd.DataFrame()
    wide = pd.DataFrame({d: t.set_index("metric")[measure] for d, t in per_dataset.items()})
    wide["mean"] = wide.mean(axis=1, skipna=True)
    wide["n_datasets"] = wide.drop(columns="mean").notna().sum(axis=1)
    return wide.sort_values("mean", ascending=False)


def summary_tables(result: dict) -> dict[str, pd.DataFrame]:
    """The tables of a benchmark result: ``full`` (metric x dataset weighted tau + mean), one per
    other measure (``full_<measure>``), ``low`` (metric x N/K mean +- std over datasets' repeat
    means), ``ablation`` (variant x dataset + mean)."""
    per = {d: pd.DataFrame(r) for d, r in result["per_dataset"].items()}
    out = {"full": mean_table(per, "weighted_tau")}
    for m in MEASURES[1:]:
        out[f"full_{m}"] = mean_table(per, m)
    low = pd.DataFrame(result["low_data"])
    if len(low):
        by_ds = low.groupby(["metric", "n_per_class", "dataset"])["weighted_tau"].mean().reset_index()
        std_rep = low.groupby(["metric", "n_per_class", "dataset"])["weighted_tau"].std().reset_index()
        agg = by_ds.groupby(["metric", "n_per_class"])["weighted_tau"].mean().unstack("n_per_class")
        spread = std_rep.groupby(["metric", "n_per_class"])["weighted_tau"].mean().unstack("n_per_class")
        agg.columns = [f"N/K={c} mean" for c in agg.columns]
        spread.columns = [f"N/K={c} std" for c in spread.columns]
        tab = pd.concat([agg, spread], axis=1)
        tab = tab[sorted(tab.columns, key=lambda c: (int(c.split("=")[1].split()[0]), c.endswith("std")))]
        out["low"] = tab.sort_values(tab.columns[0], ascending=False)
    abl = pd.DataFrame(result["ablations"])
    if len(abl):
        w = (abl.groupby(["group", "variant", "dataset"], sort=False)["weighted_tau"].first()
             .unstack("dataset"))
        w = w.reindex(pd.MultiIndex.from_frame(abl[["group", "variant"]].drop_duplicates()))
        w["mean"] = w.mean(axis=1)
        out["ablation"] = w
    return out


__all__ = ["MEASURES", "evaluate_scores", "mean_table", "summary_tables"]
