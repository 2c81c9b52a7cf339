"""Every metric's score for every (model, dataset) pair of the shipped ground truth's zoo (issue 15).

Runs the public CLI once per dataset, the same way a user would:

    zoorank rank --zoo results/ground_truth/zoo_80px.yaml --dataset D --per-class 40 \
        --all-metrics --no-track --csv <tmp> --home <home>

and writes ``results/ground_truth/metric_scores.csv`` in long form (``model, dataset, metric,
score, version``) under ``#`` header lines naming the commands and the package versions;
``version`` is each metric's code version when that dataset was scored. The learner of the
combined ranking (zoorank.metrics.combine) fits on these scores
against the ground truth's accuracies; benchmarks/bench_combined.py reads them.

The file is rewritten after each dataset (atomically), so a partial run leaves the datasets it
finished. Use a home of its own (default /work/h15home), never the ground-truth job's.

    .venv/bin/python scripts/score_ground_truth_zoo.py [--home DIR] [--per-class 40] [--dataset D ...]

``--from-scores results/benchmark/ranking_scores.csv`` computes nothing: it takes the scores that
``scripts/ship_benchmark.py --measure-ranking`` wrote from its cold rankings, which ran the same
command (the same zoo, 40 images per class, every metric), so the benchmark and the history learn
from one set of scores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("digits", "mnist5k", "fashion_mnist", "animal_mnist", "emoji", "openclipart")
ZOO = "results/ground_truth/zoo_80px.yaml"
OUT = ROOT / "results" / "ground_truth" / "metric_scores.csv"


def metric_names(zoorank: str) -> list[str]:
    """The registered metrics, as ``zoorank list metrics`` prints them (first word of each line)."""
    proc, _ = run_with_retries([zoorank, "list", "metrics"], 3)
    if proc.returncode != 0:
        raise SystemExit(f"score_ground_truth_zoo: `zoorank list metrics` failed:\n{proc.stderr[-2000:]}")
    out = proc.stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def rank_command(zoorank: str, dataset: str, per_class: int, home: str, csv: str) -> list[str]:
    return [zoorank, "rank", "--zoo", ZOO, "--dataset", dataset, "--per-class", str(per_class),
            "--all-metrics", "--no-track", "--format", "csv", "--csv", csv, "--home", home]


def run_with_retries(cmd: list[str], retries: int):
    """Run ``cmd`` in the repository root; on failure wait a minute and retry (a checkout being
    edited can fail to import for a moment). Returns (completed process, seconds of the last try)."""
    for attempt in range(retries + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        took = time.perf_counter() - t0
        if proc.returncode == 0 or attempt == retries:
            return proc, took
        print(f"score_ground_truth_zoo: attempt {attempt + 1} failed (exit {proc.returncode}), retrying in 60 s:\n"
              f"{proc.stderr[-800:]}", file=sys.stderr)
        time.sleep(60)


def metric_versions(metrics: list[str]) -> dict[str, str]:
    """Each metric's code version as the checkout states it now (a fresh interpreter, so the versions
    are those the ranking just used)."""
    code = ("import json, sys; from zoorank.metrics.registry import get_metric; "
            "print(json.dumps({m: str(get_metric(m).version) for m in sys.argv[1:]}))")
    proc = subprocess.run([sys.executable, "-c", code, *metrics], cwd=ROOT, capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def long_form(table: pd.DataFrame, dataset: str, metrics: list[str]) -> pd.DataFrame:
    """(model, dataset, metric, score) rows of one ranking table (one row per model)."""
    cols = [m for m in metrics if m in table.columns]
    if not cols:
        raise ValueError(f"the ranking table of {dataset} has none of the metric columns {metrics}: "
                         f"columns are {list(table.columns)}")
    part = table[["model", *cols]].melt(id_vars="model", var_name="metric", value_name="score")
    part.insert(1, "dataset", dataset)
    return part


def versions() -> str:
    names = ("zoorank", "torch", "numpy", "scipy", "scikit-learn")
    out = []
    for n in names:
        try:
            out.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def write(rows: pd.DataFrame, how: list[str], commands: list[str], path: Path = OUT) -> None:
    """``rows`` (long form) to ``path`` under the ``#`` header: the title, ``how`` (indented lines
    saying how the scores were made), the package versions, the datasets in ``rows``, ``commands``."""
    from zoorank.pipeline.ground_truth_records import write_commented_csv

    header = ["Metric scores of every (model, dataset) pair of the shipped ground truth's zoo (issue 15):",
              *(f"  {line}" for line in how), f"Versions: {versions()}",
              f"Datasets: {', '.join(sorted(set(rows['dataset'])))}", *commands]
    write_commented_csv(rows, path, header, float_format="%.10g")


def copy_scores(source: Path, datasets: list[str], per_class: int, out: Path) -> int:
    """Write ``out`` from the long scores table ``source`` (model, dataset, metric, score, version);
    1 when a requested dataset is absent there."""
    if not source.is_file():
        raise SystemExit(f"score_ground_truth_zoo: --from-scores {source}: no such file")
    rows = pd.read_csv(source, comment="#")
    need = {"model", "dataset", "metric", "score", "version"}
    if not need <= set(rows.columns):
        raise SystemExit(f"score_ground_truth_zoo: {source} needs columns {sorted(need)}, has {list(rows.columns)}")
    rows = rows[rows["dataset"].isin(datasets)][["model", "dataset", "metric", "score", "version"]]
    have = sorted(set(rows["dataset"]))
    shown = source.relative_to(ROOT) if source.is_absolute() and ROOT in source.parents else source
    how = [f"copied by scripts/score_ground_truth_zoo.py --from-scores {shown}",
           "(the cold rankings of scripts/ship_benchmark.py --measure-ranking); the scored images are at most",
           f"{per_class} per class of the ranking's train split (zoorank rank's default stratified split, seed 0)."]
    command = " ".join(["zoorank", *rank_command("zoorank", "<dataset>", per_class, "<home>", "<csv>")[1:]])
    write(rows.reset_index(drop=True), how, ["Command (per dataset):", f"  {command}"], out)
    missing = sorted(set(datasets) - set(have))
    if missing:
        print(f"score_ground_truth_zoo: {source} has no scores for {', '.join(missing)}", file=sys.stderr)
    return 1 if missing else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default="/work/h15home", help="zoorank home of this run (never the ground truth's)")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--dataset", action="append", help=f"default: {' '.join(DATASETS)}")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--retries", type=int, default=3, help="retries of a failed dataset (a minute apart)")
    ap.add_argument("--from-scores", metavar="CSV",
                    help="take ship_benchmark.py --measure-ranking's scores (same command) instead of ranking")
    args = ap.parse_args(argv)
    if args.from_scores:
        return copy_scores(Path(args.from_scores), args.dataset or list(DATASETS), args.per_class, Path(args.out))
    zoorank = str(Path(sys.executable).with_name("zoorank"))
    metrics = metric_names(zoorank)
    datasets = args.dataset or list(DATASETS)
    out = Path(args.out)
    done: list[pd.DataFrame] = []
    commands: list[str] = []
    for d in datasets:
        with tempfile.TemporaryDirectory() as tmp:
            csv = os.path.join(tmp, f"{d}.csv")
            cmd = rank_command(zoorank, d, args.per_class, args.home, csv)
            proc, took = run_with_retries(cmd, args.retries)
            if proc.returncode != 0:
                print(f"score_ground_truth_zoo: {d} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}",
                      file=sys.stderr)
                continue
            part = long_form(pd.read_csv(csv), d, metrics)
            versions_now = metric_versions(metrics)
            part["version"] = part["metric"].map(versions_now)
            done.append(part)
        commands.append(" ".join(["zoorank", *cmd[1:-4], "--home", "<home>"]) + f"   # {took:.0f} s wall")
        print(f"score_ground_truth_zoo: {d} scored in {took:.0f} s", file=sys.stderr)
        how = [f"written by scripts/score_ground_truth_zoo.py; the scored images are at most {args.per_class} per class",
               "of the ranking's train split (zoorank rank's default stratified split, seed 0), the number of",
               "training images per class of the ground truth's trials (their own split: docs/ground_truth.md)."]
        write(pd.concat(done, ignore_index=True), how, ["Commands:", *[f"  {c}" for c in commands]], out)
    return 0 if len(done) == len(datasets) else 1


if __name__ == "__main__":
    sys.exit(main())
