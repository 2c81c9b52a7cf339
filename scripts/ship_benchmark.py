"""Regenerate the shipped benchmark (``results/benchmark/``) on the ft-v2 ground truth (issue 14).

    .venv/bin/python scripts/ship_benchmark.py                     # flow scores, >= 3 seeds per pair
    .venv/bin/python scripts/ship_benchmark.py --scores results/ground_truth/metric_scores.csv

Ground truth: the trial and probe records ``results/ground_truth/trials.jsonl`` (recipe ft-v2,
``cpu_budget_for(dataset)``; docs/ground_truth.md) of the zoo ``results/ground_truth/zoo_80px.yaml`` on the six
datasets. A dataset enters only when every pair of the zoo has a record and every pair with an
accuracy has at least ``--min-seeds`` seeds (a pair whose every trial diverged is left out and
listed); the others are named in the report's header, which says PARTIAL until all six enter.

Scores: ``--scores flow`` (default) runs the benchmark flow (its rank subflow, 40 training images per
class, every metric; cached in ``--home``); ``--scores CSV`` reads a long table ``model, dataset,
metric, score`` (``scripts/score_ground_truth_zoo.py`` writes one with the same ranking command).

Error bars (``zoorank.reporting.benchmark_bootstrap``): ``--n-boot`` draws, each resampling every
pair's test images (binomial) and the datasets of the mean; LEAD against each baseline; the same
against the linear-probe accuracy. Compute ratio: the rank flow's per-pair seconds of a *cold*
ranking (``--ranking-times``, a CSV ``dataset, model, seconds, process_cpu_seconds``, written by
``--measure-ranking``: one cold ``zoorank rank`` per dataset in a temporary home) against the
trial + probe seconds of the same pairs.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ["digits", "mnist5k", "fashion_mnist", "animal_mnist", "emoji", "openclipart"]
ZOO = "results/ground_truth/zoo_80px.yaml"
RECORDS = "results/ground_truth/trials.jsonl"
TIMES = "results/benchmark/ranking_compute.csv"
SCORES = "results/benchmark/ranking_scores.csv"   # the scores of those cold rankings (--measure-ranking)
PER_CLASS = 40          # the ground truth's training images per class (docs/ground_truth.md)


def full_protocol_samples() -> int:
    """Training images one pair gets under the literature's protocol (``Budget.full()``, the GPU preset):
    the (lr, wd) grid at the first seed and two more seeds at the chosen point, each steps x batch."""
    from zoorank.compute.finetune import CPU_SEEDS, FULL_GRID, Budget

    full = Budget.full()
    return (len(FULL_GRID) + len(CPU_SEEDS) - 1) * full.steps * full.batch_size


def pair_truth(records, datasets, models):
    """One row per pair of the ft-v2 CPU records: accuracy (mean over seeds at the chosen lr), the
    per-seed accuracies, n_test, n_seeds, the linear probe's accuracy, trial / probe seconds."""
    import pandas as pd

    from zoorank.compute.finetune import pair_ground_truth

    from zoorank.pipeline.ground_truth_records import current_records, record_seconds, shipped_protocol_records

    groups: dict = {}
    for key, v in current_records(shipped_protocol_records(records)):
        if v.get("dataset") not in datasets or v.get("model") not in models:
            continue
        g = groups.setdefault((v["dataset"], v["model"]), {"trials": [], "probe": None, "ids": set()})
        g["ids"].add(v.get("identity"))
        if key.startswith("gt_probe/"):
            g["probe"] = v
        else:
            g["trials"].append(v)
    rows = []
    for (d, m), g in sorted(groups.items()):
        if len(g["ids"]) > 1:
            raise ValueError(f"{RECORDS}: {m} on {d} has records of {len(g['ids'])} model identities "
                             f"({', '.join(sorted(map(str, g['ids'])))}); keep one zoo's records per file")
        gt = pair_ground_truth(g["trials"], g["probe"])
        rows.append({"dataset": d, "model": m, "accuracy": gt["test_top1"], "n_test": gt["n_test"],
                     "n_seeds": gt["n_seeds"], "seeds_run": gt["seeds_run"], "seed_accuracies": list(gt["per_seed"].values()),
                     "lp_accuracy": gt["lp_test_top1"], "n_trials": gt["n_trials"],
                     "trial_seconds": sum(record_seconds(t) for t in g["trials"]),
                     "samples": sum(int(t.get("steps_done", 0)) * int(t["budget"]["batch_size"]) for t in g["trials"]),
                     "probe_seconds": record_seconds(g["probe"])})
    return pd.DataFrame(rows, columns=["dataset", "model", "accuracy", "n_test", "n_seeds", "seeds_run", "seed_accuracies",
                                       "lp_accuracy", "n_trials", "trial_seconds", "samples", "probe_seconds"])


def eligible(truth, datasets, models, min_seeds):
    """(datasets that enter, {dataset: why not}, [pairs left out: every trial diverged]).

    A pair counts its seeds *run* at the chosen lr: a seed that diverged there is excluded from the
    pair's mean (never scored 0) and listed by the ground-truth table, not re-run."""
    ok, why, left_out = [], {}, []
    for d in datasets:
        part = truth[truth["dataset"] == d]
        missing = sorted(set(models) - set(part["model"]))
        done = part[part["accuracy"].notna()]
        few = done[done["seeds_run"] < min_seeds]
        if missing:
            why[d] = f"no records yet for {len(missing)} of {len(models)} models"
        elif len(few):
            why[d] = f"{len(few)} of {len(done)} pairs have fewer than {min_seeds} seeds"
        else:
            ok.append(d)
            left_out += [f"{m} on {d}" for m in part.loc[part["accuracy"].isna(), "model"]]
    return ok, why, left_out


def scores_from_csv(path, datasets):
    import pandas as pd

    long = pd.read_csv(path, comment="#")
    need = {"model", "dataset", "metric", "score"}
    if not need <= set(long.columns):
        raise ValueError(f"{path}: a scores table needs columns {sorted(need)}, has {list(long.columns)}")
    out = {}
    for d in datasets:
        part = long[long["dataset"] == d]
        if len(part):
            out[d] = part.pivot_table(index="model", columns="metric", values="score", aggfunc="last").reset_index()
    return out, list(dict.fromkeys(long["metric"]))


def result_from_scores(scores, truth, metrics):
    """The benchmark flow's result dict (full data only) from given scores."""
    from zoorank.reporting.benchmark_tables import evaluate_scores

    per, notes = {}, {}
    for d, sc in scores.items():
        t = truth[truth["dataset"] == d][["model", "accuracy"]]
        ev, notes[d] = evaluate_scores(sc, t, metrics)
        per[d] = ev.to_dict("records")
    return {"datasets": list(scores), "metrics": metrics, "per_dataset": per, "notes": notes,
            "scores": {d: s.to_dict("records") for d, s in scores.items()},
            "truth": truth[["dataset", "model", "accuracy"]].to_dict("records"), "low_data": [], "ablations": []}


def record_ranking(dataset, table, cpu, wall, times_csv, scores_csv):
    """Add one cold ranking (the ``zoorank rank --csv`` table) to the times CSV (per-pair seconds,
    the process tree's CPU and wall seconds) and its scores, long form with each metric's code
    version, to the scores CSV (both rewritten; an earlier entry of the dataset is replaced)."""
    import pandas as pd

    from zoorank.metrics.registry import METRICS

    def put(path, part):
        old = pd.read_csv(path, comment="#") if Path(path).is_file() else pd.DataFrame()
        keep = [old[old["dataset"] != dataset]] if len(old) else []
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pd.concat([*keep, part], ignore_index=True).to_csv(path, index=False, float_format="%.10g")

    put(times_csv, pd.DataFrame({"dataset": dataset, "model": table["model"], "seconds": table["seconds"],
                                 "process_cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2)}))
    cols = [m for m in METRICS if m in table.columns]
    long = table[["model", *cols]].melt(id_vars="model", var_name="metric", value_name="score")
    long.insert(1, "dataset", dataset)
    long["version"] = long["metric"].map(lambda m: str(METRICS[m].version))
    put(scores_csv, long)


def measure_ranking(datasets, times_csv, scores_csv):
    """One cold ``zoorank rank`` per dataset in a temporary home (the rank flow, every metric, one
    thread per worker), recorded by :func:`record_ranking` as each finishes; CPU = RUSAGE_CHILDREN
    (the command and its children, the temporary Prefect server included)."""
    import pandas as pd

    zoorank = str(Path(sys.executable).with_name("zoorank"))
    for d in datasets:
        with tempfile.TemporaryDirectory() as home:
            csv = os.path.join(home, "rank.csv")
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run([zoorank, "rank", "--zoo", ZOO, "--dataset", d, "--per-class", str(PER_CLASS),
                                   "--all-metrics", "--no-track", "--format", "csv", "--csv", csv, "--home", home],
                                  cwd=ROOT, capture_output=True, text=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode != 0:
                raise SystemExit(f"ship_benchmark: cold ranking of {d} failed:\n{proc.stderr[-2000:]}")
            table = pd.read_csv(csv)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        record_ranking(d, table, cpu, time.perf_counter() - t0, times_csv, scores_csv)
        print(f"ship_benchmark: cold ranking of {d}: {cpu:.0f} s CPU", file=sys.stderr)


def bootstrap_section(result, truth, metrics, n_boot, out):
    """CIs, regret, LEAD's paired comparison against the fine-tuned and the linear-probe accuracy."""
    import pandas as pd

    from zoorank.reporting import benchmark_bootstrap as bb

    scores = {d: pd.DataFrame(r) for d, r in result["scores"].items()}
    section = {}
    for name, col, seeds in (("finetune", "accuracy", "seed_accuracies"), ("probe", "lp_accuracy", None)):
        t = truth[truth["dataset"].isin(list(scores))].copy()
        t["accuracy"] = t[col]
        if seeds is None:       # one probe per pair, on the pair's test split (shared by the dataset's pairs)
            t["seed_accuracies"] = [[a] for a in t[col]]
            t["n_test"] = t.groupby("dataset")["n_test"].transform("max")
        meas = bb.per_draw_measures(scores, t.dropna(subset=["accuracy"]), metrics, n_boot=n_boot, seed=0)
        tabs = bb.interval_tables(meas)
        label = " against the fine-tuned accuracy" if name == "finetune" else " against the linear-probe accuracy"
        section[name] = {"tables": tabs, "loses": bb.where_reference_loses(tabs, meas, ground_truth=label)}
    return section


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", default=RECORDS)
    ap.add_argument("--dataset", action="append", help=f"default: {' '.join(DATASETS)}")
    ap.add_argument("--min-seeds", type=int, default=3, help="seeds every pair of a dataset needs (default 3)")
    ap.add_argument("--scores", default="flow", help="'flow' (the benchmark flow) or a long scores CSV")
    ap.add_argument("--ranking-times", default=TIMES)
    ap.add_argument("--measure-ranking", action="store_true",
                    help="time a cold ranking of every entering dataset that has no times yet")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", default="results/benchmark")
    ap.add_argument("--home", default=os.environ.get("ZOORANK_HOME") or str(ROOT / ".zoorank"))
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT / "src"))
    import pandas as pd

    from zoorank.pipeline.ground_truth_records import read_records
    from zoorank.pipeline.preflight import resolve_specs
    from zoorank.reporting import benchmark_bootstrap as bb
    from zoorank.reporting.benchmark_report import write_report

    datasets = args.dataset or DATASETS
    models = [s.id for s in resolve_specs(str(ROOT / ZOO))]
    truth = pair_truth(read_records(ROOT / args.records), datasets, models)
    enter, why, left_out = eligible(truth, datasets, models, args.min_seeds)
    times_path = ROOT / args.ranking_times
    if args.measure_ranking:
        have = set(pd.read_csv(times_path)["dataset"]) if times_path.is_file() else set()
        measure_ranking([d for d in enter if d not in have], times_path, ROOT / SCORES)
    if args.scores == "flow":
        metrics = None
    else:
        scores, metrics = scores_from_csv(ROOT / args.scores, enter)
        long = pd.read_csv(ROOT / args.scores, comment="#")
        if "version" in long:
            lead = long[(long["metric"] == "lead") & long["dataset"].isin(enter)]["version"]
            args.lead_version = ", ".join(sorted(set(map(str, lead))))
        for d in [d for d in enter if d not in scores]:
            why[d] = f"no scores in {args.scores}"
        enter = [d for d in enter if d in scores]
    if not enter:
        raise SystemExit("ship_benchmark: no dataset has complete ground truth and scores: "
                         + "; ".join(f"{d}: {w}" for d, w in why.items()))
    truth = truth[truth["dataset"].isin(enter)]
    if args.scores == "flow":
        import torch

        torch.set_num_threads(1)
        from zoorank.config import Settings
        from zoorank.orchestration.flows.benchmark import run_benchmark

        settings = Settings.from_env(home=args.home)
        result = run_benchmark(str(ROOT / ZOO), enter, truth[["dataset", "model", "accuracy"]], per_class=PER_CLASS,
                               low_data=[], ablations=False, workers=2, settings=settings, track=False)
        metrics = result["metrics"]
    else:
        result = result_from_scores({d: scores[d] for d in enter}, truth, metrics)
    result["bootstrap"] = bootstrap_section(result, truth, metrics, args.n_boot, args.out)
    if times_path.is_file():
        times = pd.read_csv(times_path, comment="#")
        cpu = times.groupby("dataset")["process_cpu_seconds"].first().to_dict()
        result["compute_ratio"] = bb.compute_ratio(times[times["dataset"].isin(enter)], truth, cpu,
                                                   full_samples=full_protocol_samples())
    result["header"] = header(enter, why, left_out, args, truth)
    print(write_report(result, ROOT / args.out, header=result["header"])["markdown"])
    return 0


def header(enter, why, left_out, args, truth) -> str:
    from zoorank.compute.finetune import CPU_TEST_PER_CLASS_FOR, Budget, per_dataset_text, steps_text

    absent = [d for d in DATASETS if d not in enter and d not in why]
    lines = []
    if why or absent or args.min_seeds < 3:
        lines += [f"**PARTIAL** -- the ground truth is still being computed: {len(enter)} of {len(DATASETS)} "
                  f"datasets enter ({', '.join(enter)})"
                  + (f", with pairs of fewer than the protocol's 3 seeds (--min-seeds {args.min_seeds})"
                     if args.min_seeds < 3 else "")
                  + "; left out: " + "; ".join([*(f"{d} ({w})" for d, w in why.items()),
                                                 *(f"{d} (not asked for)" for d in absent)]) + ".", ""]
    seeds = sorted(set(truth["n_seeds"].dropna().astype(int)))
    short = [f"{r.model} on {r.dataset} ({r.n_seeds} of {r.seeds_run} seeds)"
             for r in truth[truth["accuracy"].notna() & (truth["n_seeds"] < truth["seeds_run"])].itertuples()]
    lines += [
        f"Zoo `{ZOO}` (12 backbones at the fine-tuning resolution) x {', '.join(enter)}.",
        f"**Ground truth**: recipe ft-v2 (`cpu_budget_for(dataset)`: {steps_text(Budget.cpu().steps)}, test cap "
        f"{Budget.cpu().test_per_class}{per_dataset_text(Budget.cpu().test_per_class, CPU_TEST_PER_CLASS_FOR)} per class; docs/ground_truth.md) from the trial records "
        f"`{args.records}`: per pair the mean test top-1 over its seeds at the chosen lr "
        f"(seeds per pair here: {', '.join(map(str, seeds))}; a dataset enters when every pair has run >= "
        f"{args.min_seeds} seeds there, a seed that diverged being excluded from the mean, never scored 0"
        + (f": {', '.join(short)}" if short else "") + "); the linear probe's test top-1 is the second ground truth."
        + (f" Left out (every trial diverged): {', '.join(left_out)}." if left_out else ""),
        "**Scores**: " + ("the benchmark flow's rank subflow" if args.scores == "flow" else f"`{args.scores}`")
        + f" ({PER_CLASS} training images per class, every metric, each with the defaults of the code that scored "
        "it" + (f"; LEAD's metric version {args.lead_version}" if getattr(args, "lead_version", None) else "") + ").",
        f"**Error bars**: {args.n_boot} bootstrap draws, each resampling every pair's test images "
        "(Binomial(n_test, p) / n_test per trial, then the mean over seeds) and the datasets of the mean; "
        "90% percentile intervals.",
        f"Regenerate: `.venv/bin/python scripts/ship_benchmark.py --scores {args.scores}"
        + (" --measure-ranking" if args.measure_ranking else "") + "` (docs/ground_truth.md, \"Benchmark\").",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
