#!/usr/bin/env bash
# The ground truth's longer-run check (issue 14, convergence bullet; docs/ground_truth.md, "Benchmark"):
# a sample of pairs (default: all 12 models of the zoo on digits and emoji) is re-fine-tuned at the
# lr the shipped ground truth chose for that pair, seed 0, with LONG_FACTOR (default 2) times the
# dataset's shipped steps (finetune.cpu_budget_for: 80, digits 160),
# in its own home (.zoorank-gt-long, gitignored); then Kendall's tau per dataset between the longer
# run's accuracies and the shipped ones (pipeline.ground_truth_records.rank_agreement) is written to
# results/ground_truth/longer_check.md. Target: tau >= 0.8 on every sampled dataset.
#
#   nohup scripts/ground_truth_longer_check.sh > .zoorank-gt-long.log 2>&1 &     # ~1.3 CPU-hours
#
# Resumable (every trial is a store record of the long home). Overrides: LONG_DATASETS, LONG_MODELS
# (space-separated ids; default every model of the zoo), LONG_FACTOR (default 2), LONG_HOME,
# LONG_OUT (the Markdown file), GT_RECORDS (the shipped records), GT_ZOO, ZOORANK, PYTHON.
# Smoke test (seconds): LONG_MODELS="cnn_mnist cnn_usps" LONG_DATASETS=emoji LONG_FACTOR=0.05 \
#   LONG_HOME=/tmp/long LONG_OUT=/tmp/long/check.md scripts/ground_truth_longer_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ZOORANK=${ZOORANK:-.venv/bin/zoorank}
PYTHON=${PYTHON:-.venv/bin/python}
GT_ZOO=${GT_ZOO:-results/ground_truth/zoo_80px.yaml}
GT_RECORDS=${GT_RECORDS:-results/ground_truth/trials.jsonl}
LONG_DATASETS=${LONG_DATASETS:-digits emoji}
LONG_MODELS=${LONG_MODELS:-}
LONG_FACTOR=${LONG_FACTOR:-2}
LONG_HOME=${LONG_HOME:-$PWD/.zoorank-gt-long}
LONG_OUT=${LONG_OUT:-results/ground_truth/longer_check.md}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$LONG_HOME/zoos"

# 1. the plan: one line "model dataset lr zoo-file" per sampled pair, at the shipped chosen lr
plan=$("$PYTHON" - "$GT_ZOO" "$GT_RECORDS" "$LONG_HOME/zoos" "$LONG_DATASETS" "$LONG_MODELS" "$LONG_FACTOR" <<'EOF'
import sys
from pathlib import Path
import yaml
from zoorank.compute.finetune import cpu_budget_for
from zoorank.pipeline.ground_truth_records import ground_truth_table, read_records
zoo, records, zoos, datasets, models, factor = sys.argv[1:7]
entries = yaml.safe_load(Path(zoo).read_text())
by_id = {(e if isinstance(e, str) else e["id"]): e for e in entries}
wanted = models.split() or list(by_id)
unknown = sorted(set(wanted) - set(by_id))
if unknown:
    sys.exit(f"ground_truth_longer_check: model(s) {', '.join(unknown)} not in {zoo}")
all_records = read_records(records)
for d in datasets.split():
    table = ground_truth_table(all_records, budget=cpu_budget_for(d).as_dict(), datasets=[d])
    steps = max(1, round(float(factor) * cpu_budget_for(d).steps))
    for m in wanted:
        row = table[(table["dataset"] == d) & (table["model"] == m)]
        if row.empty or not row["best_lr"].notna().all():
            print(f"ground_truth_longer_check: no chosen lr for {m} on {d} in {records}; skipped", file=sys.stderr)
            continue
        f = Path(zoos) / f"{m}.yaml"
        f.write_text(yaml.safe_dump([by_id[m]]))
        print(m, d, repr(float(row["best_lr"].iloc[0])), steps, f)
EOF
)
[ -n "$plan" ] || { echo "ground_truth_longer_check: nothing to run (no shipped pairs for the sample)" >&2; exit 1; }

# 2. the longer trials, one pair at a time per lane (the lr differs per pair); LONG_JOBS lanes
#    (default 2) run side by side, each in its own home (two processes never share a store)
LONG_JOBS=${LONG_JOBS:-2}
run_lane() {
  local lane=$1 i=0
  while read -r model dataset lr steps zoofile; do
    if (( i++ % LONG_JOBS == lane )); then
      echo "[longer-check lane $lane] $model on $dataset: lr $lr, seed 0, $steps steps"
      "$ZOORANK" ground-truth --preset cpu --zoo "$zoofile" --dataset "$dataset" --lrs "$lr" --lrs-up none --seeds 0 --max-seeds none \
        --steps "$steps" --threads 1 --workers 1 --no-track --home "$LONG_HOME/lane$lane"
    fi
  done <<< "$plan"
}
pids=()
for ((lane = 0; lane < LONG_JOBS; lane++)); do run_lane "$lane" & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid"; done

# 3. the longer run's table and its agreement with the shipped ranks
"$PYTHON" - "$GT_RECORDS" "$LONG_HOME" "$LONG_FACTOR" "$LONG_OUT" "$LONG_DATASETS" <<'EOF'
import sys
from dataclasses import replace
from pathlib import Path
import pandas as pd
from zoorank.compute.finetune import cpu_budget_for
from zoorank.pipeline.ground_truth_records import ground_truth_table, rank_agreement, read_records, store_records
from zoorank.storage.arrays import ArrayStore
records, home, factor, out, datasets = sys.argv[1:6]
datasets = datasets.split()
shipped_records = read_records(records)
lanes = sorted(Path(home).glob("lane*/store.zarr"))
long_records = [r for lane in lanes for r in store_records(ArrayStore(lane))]
shipped, longer, steps = [], [], {}
for d in datasets:
    b = cpu_budget_for(d)
    steps[d] = (b.steps, max(1, round(float(factor) * b.steps)))
    shipped.append(ground_truth_table(shipped_records, budget=b.as_dict(), datasets=[d]))
    longer.append(ground_truth_table(long_records, budget=replace(b, steps=steps[d][1]).as_dict(), datasets=[d]))
shipped, longer = pd.concat(shipped), pd.concat(longer)
agree = rank_agreement(shipped, longer)
pairs = shipped.merge(longer, on=["dataset", "model"], suffixes=("_shipped", "_longer"))
lines = ["# Longer-run check of the ground truth (issue 14, convergence)", "",
         f"Sampled pairs re-fine-tuned at the shipped chosen lr, seed 0, {float(factor):g} x the dataset's shipped "
         "steps (the shipped value: the mean over its seeds); written by `scripts/ground_truth_longer_check.sh`.",
         "Target: Kendall tau >= 0.8 per dataset.", "",
         "| dataset | shipped steps | longer steps | models | Kendall tau | >= 0.8 |", "|---|---|---|---|---|---|"]
lines += [f"| {r.dataset} | {steps[r.dataset][0]} | {steps[r.dataset][1]} | {r.n_models} | {r.kendall:.3f} | "
          f"{'yes' if r.kendall >= 0.8 else 'no'} |" for r in agree.itertuples()]
lines += ["", "| dataset | model | lr | shipped test top-1 | longer test top-1 |", "|---|---|---|---|---|"]
lines += [f"| {r.dataset} | {r.model} | {r.best_lr_shipped:g} | {r.test_top1_shipped:.4f} | {r.test_top1_longer:.4f} |"
          for r in pairs.itertuples()]
Path(out).parent.mkdir(parents=True, exist_ok=True)
Path(out).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
