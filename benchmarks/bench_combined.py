"""Leave-one-dataset-out benchmark of the combined ranking (issue 15) against every single metric
and prior: mean weighted tau with bootstrap 90% CIs over datasets, paired bootstrap of each
ranker's difference from ``combined``, top-1 and top-3 regret (accuracy points, %).

Two tables:

(a) the published supervised table (11 ImageNet models x 10 datasets, SFDA/ETran repositories:
    benchmarks/data/published_supervised_finetune.csv). No per-pair metric scores are published
    there, so ``combined`` combines the priors only (history_mean, source_accuracy, size: the cards
    in benchmarks/data/published_supervised_cards.csv); LEAD enters with its published per-dataset tau
    (benchmarks/data/published_lead_tau.csv; no regret: its scores are not published).
(b) the new ground truth (results/ground_truth/trials.jsonl: each pair's mean test accuracy over its
    seeds, read with zoorank.pipeline.ground_truth_records) with the per-pair scores of
    results/ground_truth/metric_scores.csv (scripts/score_ground_truth_zoo.py). While the ground-truth
    job runs this is PARTIAL: the output names the datasets and pairs used. Rerun when it grows.

For each held-out dataset every learned ranker is fitted on the other datasets only
(zoorank.metrics.combine.rank_with_history; history_mean is itself leave-one-out inside the
training datasets). Every combination method of zoorank.metrics.combine.METHODS is measured; the
best on (b) (on (a) while (b) has fewer than 3 datasets) is the one `combined` should use, and the
output says whether DEFAULT_METHOD agrees. Choosing among the methods on the same datasets is itself
a (mild) selection: the chosen method's mean is optimistic by that choice.

    .venv/bin/python benchmarks/bench_combined.py [--n-boot 10000] [--out benchmarks/results/combined]
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from zoorank.metrics import combine, evaluation

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
TRIALS = ROOT / "results" / "ground_truth" / "trials.jsonl"
SCORES = ROOT / "results" / "ground_truth" / "metric_scores.csv"
GT_ZOO = ROOT / "results" / "ground_truth" / "zoo_80px.yaml"


# --- inputs ----------------------------------------------------------------------------------------

def read_commented_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#")


def published_history() -> pd.DataFrame:
    wide = read_commented_csv(DATA / "published_supervised_finetune.csv")
    return wide.melt(id_vars="dataset", var_name="model", value_name="accuracy")


def published_cards() -> tuple[dict, dict]:
    cards = read_commented_csv(DATA / "published_supervised_cards.csv").set_index("model")
    return (cards["imagenet_top1"].div(100.0).to_dict(), cards["parameters"].astype(int).to_dict())


def published_lead() -> dict[str, float]:
    return read_commented_csv(DATA / "published_lead_tau.csv").set_index("dataset")["weighted_tau"].to_dict()


def ground_truth_history(path: Path = TRIALS) -> pd.DataFrame:
    """(dataset, model, accuracy in %) of every pair of the shipped protocol with at least one converged seed."""
    from zoorank.pipeline import ground_truth_records as records

    table = records.ground_truth_table(records.shipped_protocol_records(records.read_records(path)))
    table = table[table["n_seeds"] > 0]
    return pd.DataFrame({"dataset": table["dataset"], "model": table["model"],
                         "accuracy": 100.0 * table["test_top1"].astype(float),
                         "val": 100.0 * table["val_top1"].astype(float)}).reset_index(drop=True)


def ground_truth_cards() -> tuple[dict, dict]:
    from zoorank.zoo import load_zoo
    from zoorank.zoo.cards import model_card

    cards = {s.id: model_card(s) for s in load_zoo(str(GT_ZOO))}
    return ({m: c.source_accuracy for m, c in cards.items() if c.source_accuracy is not None},
            {m: c.parameters for m, c in cards.items() if c.parameters})


# --- leave-one-dataset-out -------------------------------------------------------------------------

def loo_scores(history: pd.DataFrame, metric_scores: pd.DataFrame | None, metrics: list[str], *,
               source_accuracy: dict, parameters: dict, datasets=None) -> dict[str, pd.DataFrame]:
    """Per held-out dataset (those of ``datasets``, default all): a model x ranker table of scores
    (every metric, every prior, and ``combined[<method>]`` for each method), each learned without
    that dataset from the rest of ``history``."""
    inputs = [*metrics, *combine.PRIORS]
    out = {}
    for d, part in history.groupby("dataset", sort=True):
        if datasets is not None and d not in datasets:
            continue
        models = part["model"].tolist()
        table = combine.input_table(metric_scores, d, models, history, metrics=metrics,
                                    source_accuracy=source_accuracy, parameters=parameters)
        train = combine.training_inputs(metric_scores, history, exclude=d, metrics=metrics,
                                        source_accuracy=source_accuracy, parameters=parameters)
        columns = [c for c in inputs if c in table]
        for method in combine.METHODS:   # what combine.rank_with_history does, the training inputs built once
            comb = combine.fit_combination(method, train, history, columns, exclude=d)
            table[f"combined[{method}]"] = comb.score(table[columns])
        out[d] = table
    return out


def evaluate(per_dataset: dict[str, pd.DataFrame], history: pd.DataFrame) -> pd.DataFrame:
    """One row per (ranker, dataset): weighted tau, top-1/top-3 regret over the models with a score."""
    rows = []
    for d, table in per_dataset.items():
        acc = history[history["dataset"] == d].set_index("model")["accuracy"]
        for ranker in table.columns:
            s = table[ranker].astype(float)
            ok = s.notna() & acc.reindex(s.index).notna()
            row = {"ranker": ranker, "dataset": d, "n_models": int(ok.sum())}
            if ok.sum() >= evaluation.MIN_MODELS and np.ptp(s[ok]) > 0:
                a = acc.reindex(s.index)[ok].to_numpy(float)
                row.update({"weighted_tau": evaluation.weighted_tau(s[ok].to_numpy(float), a),
                            "top1_regret": evaluation.top_k_regret(s[ok].to_numpy(float), a, 1),
                            "top3_regret": evaluation.top_k_regret(s[ok].to_numpy(float), a, 3)})
            rows.append(row)
    return pd.DataFrame(rows)


def summarise(per: pd.DataFrame, reference: str, *, n_boot: int) -> pd.DataFrame:
    """Per ranker: mean tau with its bootstrap 90% CI, mean regrets, and the paired bootstrap of
    ``reference - ranker`` over the datasets both rank (positive = the reference is better)."""
    wide = per.pivot(index="dataset", columns="ranker", values="weighted_tau")
    rows = []
    for ranker in wide.columns:
        taus = wide[ranker].dropna()
        if taus.empty:
            continue
        ci = evaluation.bootstrap_mean_ci(taus.to_numpy(), n_boot=n_boot)
        sub = per[per["ranker"] == ranker]
        row = {"ranker": ranker, "mean_tau": ci["mean"], "ci_lo": ci["lo"], "ci_hi": ci["hi"],
               "n_datasets": ci["n"], "top1_regret": float(sub["top1_regret"].mean()),
               "top3_regret": float(sub["top3_regret"].mean()),
               "n_models": f"{int(sub['n_models'].min())}-{int(sub['n_models'].max())}"}
        both = wide[[reference, ranker]].dropna()
        if ranker != reference and len(both):
            diff = evaluation.paired_bootstrap_difference(both[reference].to_numpy(), both[ranker].to_numpy(),
                                                          n_boot=n_boot)
            row.update({"ref_minus": diff["diff"], "diff_lo": diff["lo"], "diff_hi": diff["hi"],
                        "p_ref_not_better": diff["p_not_better"]})
        rows.append(row)
    return pd.DataFrame(rows).sort_values("mean_tau", ascending=False).reset_index(drop=True)


def best_method(summary: pd.DataFrame) -> str:
    comb = summary[summary["ranker"].str.startswith("combined[")]
    return comb.iloc[0]["ranker"][len("combined["):-1]


def losses(per: pd.DataFrame, reference: str) -> list[str]:
    """Datasets where a single metric or prior beats the reference, with by how much."""
    out = []
    wide = per.pivot(index="dataset", columns="ranker", values="weighted_tau")
    singles = [c for c in wide.columns if not c.startswith("combined")]
    for d, row in wide.iterrows():
        better = row[singles].dropna()
        better = better[better > row[reference]].sort_values(ascending=False)
        if len(better):
            out.append(f"{d}: combined {row[reference]:.3f} < " +
                       ", ".join(f"{k} {v:.3f}" for k, v in better.head(5).items())
                       + (f" (+{len(better) - 5} more)" if len(better) > 5 else ""))
    return out


def select_regret(per_dataset: dict[str, pd.DataFrame], history: pd.DataFrame, ranker: str,
                  budgets=(1, 2, 3, 4)) -> list[dict]:
    """Regret of ``zoorank select --budget N`` simulated from the records: the ranker's top
    ``k = 2^(N-1)`` models (zoorank.orchestration.budgeted_selection.halving_plan), the winner the
    one with the best validation top-1 of its ground-truth pair (the full recipe's selected point:
    every halving round's signal taken as the full trial's, i.e. an optimistic successive halving),
    regret = best test accuracy minus the winner's (accuracy points, mean over datasets)."""
    from zoorank.orchestration.budgeted_selection import halving_plan

    rows = []
    for n in budgets:
        regrets, ks = [], []
        for d, table in per_dataset.items():
            h = history[history["dataset"] == d].set_index("model")
            s = table[ranker].astype(float).dropna()
            s = s[s.index.isin(h.index)]
            if len(s) < 2:
                continue
            k = halving_plan(n, len(s), 80)[0][0]
            top = s.sort_values(ascending=False, kind="stable").index[:k]
            win = h.loc[top, "val"].astype(float).idxmax()
            regrets.append(float(h["accuracy"].max() - h.loc[win, "accuracy"]))
            ks.append(k)
        if regrets:
            rows.append({"budget": n, "k": max(ks), "mean_regret": float(np.mean(regrets)),
                         "max_regret": float(np.max(regrets)), "datasets": len(regrets)})
    return rows


# --- one table -------------------------------------------------------------------------------------

def run_table(name: str, history: pd.DataFrame, metric_scores, metrics, cards, *, n_boot: int,
              method: str | None, extra_tau: dict[str, dict[str, float]] | None = None, datasets=None) -> dict:
    t0 = time.perf_counter()
    per_dataset = loo_scores(history, metric_scores, metrics, source_accuracy=cards[0], parameters=cards[1],
                             datasets=datasets)
    per = evaluate(per_dataset, history)
    for ranker, taus in (extra_tau or {}).items():
        per = pd.concat([per, pd.DataFrame([{"ranker": ranker, "dataset": d, "weighted_tau": v,
                                              "n_models": len(per_dataset.get(d, []))}
                                             for d, v in taus.items() if d in per_dataset])], ignore_index=True)
    chosen = method or best_method(summarise(per, f"combined[{combine.DEFAULT_METHOD}]", n_boot=n_boot))
    ref = f"combined[{chosen}]"
    summary = summarise(per, ref, n_boot=n_boot)
    select = select_regret(per_dataset, history, ref) if "val" in history else []
    return {"name": name, "datasets": sorted(per_dataset), "pairs": int(history["dataset"].isin(per_dataset).sum()),
            "history_datasets": sorted(set(history["dataset"])), "select": select,
            "models": sorted(history["model"].unique()), "chosen_method": chosen, "reference": ref,
            "summary": summary, "per_dataset": per, "losses": losses(per, ref),
            "seconds": time.perf_counter() - t0}


# --- output ----------------------------------------------------------------------------------------

def fmt(v, digits=3):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown(results: list[dict], n_boot: int, command: str) -> str:
    buf = io.StringIO()
    w = buf.write
    w("# Combined ranking: leave-one-dataset-out benchmark\n\n")
    w(f"Written by `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).\n")
    w(f"Mean weighted tau over the held-out datasets, percentile bootstrap 90% CI over datasets ({n_boot} "
      "resamples); `ref - x`: paired bootstrap of the chosen `combined` minus the ranker (90% CI, "
      "`p`: share of resamples where `combined` is not better). Regret: accuracy points (%) lost by "
      "fine-tuning the ranker's top-1 (top-3) instead of the best. A ranker is evaluated on the models "
      "it scores (at least 3: LEEP/NCE skip backbones without a source head, source_accuracy knows 4).\n\n")
    for r in results:
        w(f"## {r['name']}\n\n")
        w(f"Held-out datasets ({len(r['datasets'])}): {', '.join(r['datasets'])}; {r['pairs']} pairs, "
          f"history for the priors: {', '.join(r['history_datasets'])}; "
          f"{len(r['models'])} models. Best combination method here: **{r['chosen_method']}** "
          f"(`combined` = `{r['reference']}`; zoorank.metrics.combine.DEFAULT_METHOD = "
          f"`{combine.DEFAULT_METHOD}`).\n\n")
        if r.get("partial"):
            w(f"PARTIAL ground truth: {r['partial']}\n\n")
        elif r.get("coverage"):
            w(f"{r['coverage'][0].upper()}{r['coverage'][1:]}.\n\n")
        w("| ranker | mean tau | 90% CI | datasets | models | top-1 regret | top-3 regret | ref - x | 90% CI | p |\n")
        w("|---|---|---|---|---|---|---|---|---|---|\n")
        for _, s in r["summary"].iterrows():
            name = f"**{s['ranker']}**" if s["ranker"] == r["reference"] else s["ranker"]
            w(f"| {name} | {fmt(s['mean_tau'])} | [{fmt(s['ci_lo'])}, {fmt(s['ci_hi'])}] | {s['n_datasets']} | "
              f"{s['n_models']} | {fmt(s['top1_regret'], 2)} | {fmt(s['top3_regret'], 2)} | "
              f"{fmt(s.get('ref_minus'))} | "
              + (f"[{fmt(s.get('diff_lo'))}, {fmt(s.get('diff_hi'))}]" if not pd.isna(s.get("diff_lo")) else "")
              + f" | {fmt(s.get('p_ref_not_better'), 2)} |\n")
        wide = r["per_dataset"].pivot(index="ranker", columns="dataset", values="weighted_tau")
        order = [x for x in r["summary"]["ranker"] if x in wide.index]
        w("\nPer dataset (weighted tau):\n\n| ranker | " + " | ".join(wide.columns) + " |\n")
        w("|---|" + "---|" * len(wide.columns) + "\n")
        for ranker in order:
            w(f"| {ranker} | " + " | ".join(fmt(v) for v in wide.loc[ranker]) + " |\n")
        if r.get("select"):
            w("\n`select --budget N` regret, simulated from the records (top k = 2^(N-1) of `combined`, the "
              "winner by its pair's validation top-1, i.e. as if each halving round saw the full recipe's "
              "validation; accuracy points):\n\n| budget N | k | mean regret | max regret | datasets |\n"
              "|---|---|---|---|---|\n")
            for x in r["select"]:
                w(f"| {x['budget']} | {x['k']} | {x['mean_regret']:.2f} | {x['max_regret']:.2f} | {x['datasets']} |\n")
        w("\nWhere `combined` loses to a single metric or prior:\n\n")
        w("".join(f"- {line}\n" for line in r["losses"]) or "- nowhere\n")
        w(f"\n({r['seconds']:.1f} s)\n\n")
    return buf.getvalue()


def as_json(results: list[dict], n_boot: int, command: str) -> dict:
    out = {"command": command, "n_boot": n_boot, "default_method": combine.DEFAULT_METHOD, "tables": []}
    for r in results:
        out["tables"].append({k: (v.replace({np.nan: None}).to_dict(orient="records") if isinstance(v, pd.DataFrame)
                                  else v) for k, v in r.items()})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-boot", type=int, default=10_000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "combined"))
    ap.add_argument("--method", choices=combine.METHODS, help="report this method as `combined` (default: the best)")
    args = ap.parse_args(argv)
    command = "python benchmarks/bench_combined.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results = []

    pub = published_history()
    results.append(run_table("(a) Published supervised table (priors only: no per-pair metric scores are published)",
                             pub, None, [], published_cards(), n_boot=args.n_boot, method=args.method,
                             extra_tau={"lead (published tau)": published_lead()}))

    if TRIALS.is_file() and SCORES.is_file():
        gt = ground_truth_history()
        scores = read_commented_csv(SCORES)
        scored = set(scores["dataset"])
        metrics = sorted(scores["metric"].unique())
        r = run_table("(b) New ground truth (issue 14) with zoorank's per-pair metric scores", gt, scores,
                      metrics, ground_truth_cards(), n_boot=args.n_boot, method=args.method,
                      datasets=sorted(scored & set(gt["dataset"])))
        counts = gt.groupby("dataset")["model"].count()
        unscored = sorted(set(counts.index) - scored)
        if unscored or len(counts) < 6 or (counts < 12).sum() > 1:
            r["partial"] = ("held out (scored): only the datasets with metric scores; pairs with an accuracy per "
                            "dataset: " + ", ".join(f"{d} {n}" for d, n in counts.items())
                            + f"; datasets without metric scores yet: {', '.join(unscored) or 'none'}"
                            + "; of the planned 6 datasets x 12 models")
        else:
            r["coverage"] = ("complete ft-v2 ground truth: pairs with an accuracy per dataset: "
                             + ", ".join(f"{d} {n}" for d, n in counts.items()))
        results.append(r)
    else:
        print(f"bench_combined: {TRIALS} or {SCORES} missing: only the published table", file=sys.stderr)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown(results, args.n_boot, command), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(as_json(results, args.n_boot, command), indent=1, default=float),
                                        encoding="utf-8")
    for r in results:
        print(r["name"])
        print(r["summary"][["ranker", "mean_tau", "ci_lo", "ci_hi", "n_datasets", "top1_regret"]]
              .head(25).to_string(index=False))
    print(f"wrote {out.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
