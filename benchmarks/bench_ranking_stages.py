"""Where a cold ranking's compute goes: per-stage seconds of ``zoorank rank`` per backbone, beside the
pair's fine-tuning compute from the ground-truth records (issue 14's compute ratio, split by stage).

    .venv/bin/python benchmarks/bench_ranking_stages.py                    # emoji, the benchmark's settings
    .venv/bin/python benchmarks/bench_ranking_stages.py --dataset digits --per-class 10

Runs the public command (``zoorank rank --zoo results/ground_truth/zoo_80px.yaml --per-class 40
--all-metrics``, one BLAS/OpenMP thread, the shipped benchmark's settings) cold in a temporary home
with tracking on, then reads each pair run's ``time.<stage>`` metrics (the rank flow's wall seconds
per stage, ``zoorank.pipeline.outcomes.collect_pair``) from its SQLite MLflow. The fine-tuning side
is the shipped table's ``trial_seconds + probe_seconds`` (``results/ground_truth.csv``: thread CPU
time where recorded). Writes ``benchmarks/results/ranking_stages.md``. The stage seconds are wall
seconds of 2 worker threads: on an idle machine about CPU seconds, on a loaded one inflated.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO = "results/ground_truth/zoo_80px.yaml"
TABLE = "results/ground_truth.csv"


def cold_stage_seconds(dataset: str, per_class: int):
    """Per-pair stage seconds (one column per stage) of a cold tracked ranking of ``dataset``."""
    from zoorank.config import Settings
    from zoorank.storage.tracking import Tracker

    zoorank = str(Path(sys.executable).with_name("zoorank"))
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        proc = subprocess.run([zoorank, "rank", "--zoo", ZOO, "--dataset", dataset, "--per-class", str(per_class),
                               "--all-metrics", "--home", home], cwd=ROOT, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"bench_ranking_stages: zoorank rank failed:\n{proc.stderr[-2000:]}")
        found = re.search(r"MLflow run ([0-9a-f]{32})", proc.stdout)
        if not found:
            raise SystemExit("bench_ranking_stages: no 'MLflow run <id>' line in the ranking's output")
        pairs = Tracker.from_settings(Settings.from_env(home=home)).pairs_frame(found.group(1))
    stages = [c for c in pairs.columns if c.startswith("time.")]
    out = pairs[["model", *stages]].rename(columns={c: c[len("time."):] for c in stages}).set_index("model")
    return out.fillna(0.0).astype(float)


def report(dataset: str, per_class: int, stages, table) -> str:
    finetune = table[table["dataset"] == dataset].set_index("model")
    finetune = (finetune["trial_seconds"] + finetune["probe_seconds"]).reindex(stages.index)
    per_model = stages.assign(ranking=stages.sum(axis=1), finetune=finetune)
    per_model["ratio"] = per_model["ranking"] / per_model["finetune"]
    totals = stages.sum().sort_values(ascending=False)
    lines = [f"# Ranking compute by stage: {dataset}, {per_class} images per class, every metric", "",
             f"`benchmarks/bench_ranking_stages.py --dataset {dataset} --per-class {per_class}`: a cold tracked "
             f"`zoorank rank --zoo {ZOO} --all-metrics`, one thread per worker; stage seconds from each pair "
             f"run's `time.<stage>`; fine-tuning = `{TABLE}` trial + probe seconds.", "",
             "| stage | seconds | share of the ranking | share of the fine-tuning |", "|---|---|---|---|"]
    ft_total = float(per_model["finetune"].sum())
    lines += [f"| {s} | {v:.1f} | {v / totals.sum():.1%} | {v / ft_total:.2%} |" for s, v in totals.items()]
    lines += [f"| **all** | {totals.sum():.1f} | 100% | {totals.sum() / ft_total:.2%} |", "",
              "| model | " + " | ".join(totals.index) + " | ranking | fine-tuning | ratio |",
              "|---|" + "---|" * (len(totals) + 3)]
    for m, r in per_model.sort_values("ranking", ascending=False).iterrows():
        lines.append(f"| {m} | " + " | ".join(f"{r[s]:.1f}" for s in totals.index)
                     + f" | {r['ranking']:.1f} | {r['finetune']:.0f} | {r['ratio']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="emoji")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/ranking_stages.md"))
    args = ap.parse_args(argv)
    import pandas as pd

    stages = cold_stage_seconds(args.dataset, args.per_class)
    text = report(args.dataset, args.per_class, stages, pd.read_csv(ROOT / TABLE, comment="#"))
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
