#!/usr/bin/env bash
# The CPU ground truth, recipe ft-v2 (docs/ground_truth.md): 12 backbones x 6 datasets, LP-FT,
# lr {1e-3, 3e-3, 1e-2} at seed 0 then seeds 1, 2 at the chosen lr, 2 single-threaded workers.
# Estimated 3.5 CPU-hours (about 1.8 h wall) on an idle 2-core machine; longer when shared.
#
#   mkdir -p .zoorank-gt && nohup scripts/ground_truth_v3.sh > .zoorank-gt/run.log 2>&1 &
#
# Resumable: rerun the same command after a crash or kill; finished trials come from the store
# (.zoorank-gt/store.zarr) or, on another machine, from the shipped records file, which is
# imported first. Every EXPORT_EVERY seconds (default 600) the store's trial records are exported
# to $GT_RECORDS (commit it as it grows); at the end the table $GT_CSV is written from them.
# Overrides (smoke tests): GT_ZOO, GT_DATASETS (space-separated), GT_HOME, GT_RECORDS, GT_CSV,
# ZOORANK (the zoorank executable); extra arguments are passed to the fine-tuning command
# (e.g. --steps 4 --train-per-class 4 for a smoke test).
set -euo pipefail
cd "$(dirname "$0")/.."
ZOORANK=${ZOORANK:-.venv/bin/zoorank}
GT_HOME=${GT_HOME:-$PWD/.zoorank-gt}
GT_ZOO=${GT_ZOO:-results/ground_truth/zoo_80px.yaml}
GT_DATASETS=${GT_DATASETS:-digits mnist5k fashion_mnist animal_mnist emoji openclipart}
GT_RECORDS=${GT_RECORDS:-results/ground_truth/trials.jsonl}
GT_CSV=${GT_CSV:-results/ground_truth.csv}
EXPORT_EVERY=${EXPORT_EVERY:-600}
# one thread per worker everywhere (torch and BLAS): oversubscribed threads made steps ~20x slower
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$GT_HOME" "$(dirname "$GT_RECORDS")"

datasets=()
for d in $GT_DATASETS; do datasets+=(--dataset "$d"); done

if [ -s "$GT_RECORDS" ]; then
  "$ZOORANK" ground-truth --import "$GT_RECORDS" --home "$GT_HOME"
fi

( trap 'kill "$nap" 2>/dev/null; exit 0' TERM
  while true; do
    sleep "$EXPORT_EVERY" & nap=$!
    wait "$nap"
    "$ZOORANK" ground-truth --export "$GT_RECORDS" --home "$GT_HOME" || true
  done ) &
exporter=$!
trap 'kill "$exporter" 2>/dev/null || true' EXIT

echo "[ground-truth] start $(date -u +%FT%TZ): zoo $GT_ZOO, datasets $GT_DATASETS, home $GT_HOME"
start=$(date +%s)
"$ZOORANK" ground-truth --preset cpu --zoo "$GT_ZOO" "${datasets[@]}" --threads 1 --workers 2 \
  --home "$GT_HOME" --export "$GT_RECORDS" --csv "$GT_CSV" "$@"
echo "[ground-truth] done $(date -u +%FT%TZ) in $(( $(date +%s) - start )) s wall: $GT_CSV, $GT_RECORDS"
