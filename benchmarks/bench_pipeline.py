"""Pipeline benchmarks: Prefect overhead, cached reruns, thread vs Dask runners, cost growth.

Usage::

    .venv/bin/python benchmarks/bench_pipeline.py            # full: ~15 min on 2 idle cores
    .venv/bin/python benchmarks/bench_pipeline.py --quick    # smoke sizes
    .venv/bin/python benchmarks/bench_pipeline.py --only overhead

Sections (every timed run starts from an empty Zarr store unless it says "cached"; MLflow
tracking off so that the flow and the direct path do the same work):

* ``overhead``: the ``rank`` flow (thread runner, 1 worker: the same serial order of work) vs
  ``zoorank.pipeline.pairs.run_pair_direct`` (the same stage functions without Prefect) on the same
  pairs. ``overhead = flow / direct - 1`` (target <= 10%). Two workloads: ``small`` (the
  digit CNNs, 30/class: stage work of ~0.3 s per pair, so orchestration dominates; median of
  ``--repeats``) and ``typical`` (ImageNet backbones mobilenet_v2 and efficientnet_lite0 on
  digits, 30/class, feature extraction dominating; median of ``--repeats``; skipped with
  ``--quick``). Single runs of the same workload vary by about 10% here, hence the medians.
* ``cached``: the same flow again on the now full store vs its cold run
  (target: cached / cold <= 5%).
* ``runners``: CPU-bound scoring (LEAD's SVM and NTK stages and 10 baselines, 8 pairs of
  2,500 images) on the thread runner (2 threads) and on Dask with 1 and 2 single-threaded
  worker processes (LocalCluster), every runner starting from the same store of extracted
  features. Speed-up = Dask-1 work / Dask-2 work, work = cold - fully cached run (target
  >= 1.6x on 2 cores); the fixed overhead (cluster start-up, task submission) is the cached
  run on Dask minus the same on the thread runner; end-to-end ratios are reported beside.
* ``growth``: cold cost over models x datasets, 1 x 1 up to the default zoo x 5 datasets
  (12 x 5; the digit CNNs first, then the ImageNet-type backbones at 32 px), 10 images per
  class, seconds and seconds per pair.

BLAS/torch threads are pinned to ``--blas-threads`` (default 1) in this process and in the
Dask workers, so that parallelism comes from the runner, not from oversubscribed BLAS.
Writes ``benchmarks/results/pipeline[_quick].json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import os
import sys

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    if "--blas-threads" in sys.argv:
        os.environ[_v] = sys.argv[sys.argv.index("--blas-threads") + 1]
    else:
        os.environ.setdefault(_v, "1")

import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

_TMP = Path(tempfile.mkdtemp(prefix="zoorank-bench-pipeline-"))
os.environ.setdefault("PREFECT_HOME", str(_TMP / "prefect"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")

from zoorank.config import Settings, apply_offline_defaults  # noqa: E402

apply_offline_defaults(Settings.from_env(env={}, home=_TMP / "zr"))

MODELS = ["cnn_mnist", "cnn_usps", "cnn_digitrec", "cnn_svhn"]
TYPICAL_MODELS = ["mobilenet_v2", "efficientnet_lite0"]
DATASETS = ["digits", "mnist5k", "animal_mnist", "fashion_mnist"]
METRICS = ["lead", "logme", "hscore", "leep", "nce", "knn", "transrate"]
_counter = [0]


def fresh_settings() -> Settings:
    _counter[0] += 1
    return Settings.from_env(env={}, home=_TMP / f"run{_counter[0]}")


def machine() -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "blas_threads": os.environ.get("OMP_NUM_THREADS")}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                           if line.startswith("model name"))
        info["mem_gib"] = round(int(next(line.split()[1] for line in open("/proc/meminfo")
                                         if line.startswith("MemTotal"))) / 2**20, 1)
        info["loadavg_at_start"] = os.getloadavg()
    except (OSError, StopIteration):
        pass
    return info


def run_flow(models, datasets, per_class, settings, runner="thread", workers=1, metrics=METRICS):
    from zoorank.api import rank

    t0 = time.perf_counter()
    table = rank(list(models), list(datasets), per_class=per_class, metrics=metrics, settings=settings,
                 track=False, runner=runner, workers=workers)
    return time.perf_counter() - t0, table


def run_direct(models, datasets, per_class, settings, metrics=METRICS):
    from zoorank.pipeline import pairs as pipeline
    from zoorank.pipeline import stages
    from zoorank.storage.arrays import ArrayStore

    t0 = time.perf_counter()
    store = ArrayStore(settings.store)
    subset = stages.SubsetSpec(per_class=per_class)
    outcomes = [pipeline.run_pair_direct(store, m, d, subset, metrics) for d in datasets for m in models]
    table = pipeline.ranking_table(outcomes, metrics)
    return time.perf_counter() - t0, table


def bench_overhead_and_cached(models, datasets, per_class, repeats) -> dict:
    """Flow vs direct (cold, alternating order), then the flow again on the full store."""
    flow_t, direct_t, cached_t = [], [], []
    for i in range(repeats):
        order = [("direct", run_direct), ("flow", run_flow)]
        for name, fn in (order if i % 2 == 0 else order[::-1]):
            s = fresh_settings()
            t, table = fn(models, datasets, per_class, s)
            assert (table["cached_stages"] == 0).all(), f"{name}: expected a cold run"
            (flow_t if name == "flow" else direct_t).append(t)
            if name == "flow":
                tc, again = run_flow(models, datasets, per_class, s)
                assert (again["cached_stages"] > 0).all()
                cached_t.append(tc)
            shutil.rmtree(s.home, ignore_errors=True)
    f, d, c = statistics.median(flow_t), statistics.median(direct_t), statistics.median(cached_t)
    return {"pairs": len(models) * len(datasets), "models": models, "datasets": datasets, "per_class": per_class,
            "flow_s": round(f, 2), "direct_s": round(d, 2), "overhead": round(f / d - 1, 3),
            "overhead_s": round(f - d, 2), "cold_s": round(f, 2), "cached_s": round(c, 2),
            "cached_over_cold": round(c / f, 3), "flow_runs_s": [round(x, 2) for x in flow_t],
            "direct_runs_s": [round(x, 2) for x in direct_t], "cached_runs_s": [round(x, 2) for x in cached_t]}


def bench_overhead(args) -> dict:
    """Two workloads: the tiny digit CNNs (orchestration-dominated: the worst case for the
    ratios) and a typical ranking (ImageNet backbones, extraction-dominated)."""
    small = bench_overhead_and_cached(
        MODELS[:3], args.overhead_datasets.split(",") if args.overhead_datasets else (
            DATASETS[:1] if args.quick else DATASETS[:2]), args.overhead_per_class or args.per_class, args.repeats)
    out = {"small": small}
    if not args.quick:
        out["typical"] = bench_overhead_and_cached(TYPICAL_MODELS, ["digits"], 30, args.repeats)
    return out


def bench_runners(args) -> dict:
    """Scoring on the thread runner and on Dask with 1 and 2 worker processes.

    Features are extracted once beforehand (a ``knn``-only ranking warms the store) and every
    runner starts from a copy of that store, so the cold run times CPU-bound scoring (LEAD's
    SVM and NTK stages and every baseline) and the cached rerun times the fixed cost of the
    runner (cluster start-up, task submission). Work = cold - cached.
    """
    models = MODELS
    datasets = args.runners_datasets.split(",") if args.runners_datasets else (
        ["mnist5k"] if args.quick else ["mnist5k", "fashion_mnist"])
    per_class = args.runners_per_class or (30 if args.quick else 250)
    metrics = args.runners_metrics.split(",") if args.runners_metrics else [
        "lead", "logme", "hscore", "leep", "nce", "nleep", "sfda", "gbc", "pactran", "transrate", "parc"]
    warm = fresh_settings()
    run_flow(models, datasets, per_class, warm, workers=2, metrics=["knn"])
    out = {"pairs": len(models) * len(datasets), "models": models, "datasets": datasets, "per_class": per_class,
           "metrics": metrics, "runs": {}}
    for label, runner, workers in [("thread-2", "thread", 2), ("dask-1", "dask", 1), ("dask-2", "dask", 2)]:
        s = fresh_settings()
        shutil.copytree(warm.store, s.store)
        cold, table = run_flow(models, datasets, per_class, s, runner=runner, workers=workers, metrics=metrics)
        cached, again = run_flow(models, datasets, per_class, s, runner=runner, workers=workers, metrics=metrics)
        assert (again["cached_stages"] == 3 + len(metrics)).all(), f"{label}: rerun not fully cached"
        out["runs"][label] = {"cold_s": round(cold, 2), "cached_s": round(cached, 2),
                              "work_s": round(cold - cached, 2)}
        shutil.rmtree(s.home, ignore_errors=True)
    shutil.rmtree(warm.home, ignore_errors=True)
    r = out["runs"]
    out["speedup_dask2_vs_dask1"] = round(r["dask-1"]["cold_s"] / r["dask-2"]["cold_s"], 3)
    out["speedup_dask2_vs_dask1_work_only"] = round(r["dask-1"]["work_s"] / max(r["dask-2"]["work_s"], 1e-9), 3)
    out["dask_fixed_overhead_s"] = round(r["dask-2"]["cached_s"] - r["thread-2"]["cached_s"], 2)
    return out


def bench_growth(args) -> dict:
    """Cold cost over models x datasets, 1 x 1 up to the whole default zoo x 5 datasets (12 x 5),
    10 images per class, size-flexible backbones at 32 px (``results/benchmark/zoo_32px.yaml``)."""
    from zoorank.zoo import load_zoo

    zoo = load_zoo(ROOT / "results" / "benchmark" / "zoo_32px.yaml")
    order = [s for s in zoo if s.id.startswith("cnn_")] + [s for s in zoo if not s.id.startswith("cnn_")]
    datasets = ["digits", "mnist5k", "fashion_mnist", "animal_mnist", "emoji"]
    grid = [(1, 1), (2, 1), (3, 2)] if args.quick else [(1, 1), (3, 1), (6, 2), (12, 3), (12, 5)]
    rows = []
    for nm, nd in grid:
        s = fresh_settings()
        t, table = run_flow(order[:nm], datasets[:nd], 10, s, workers=2)
        rows.append({"models": nm, "datasets": nd, "pairs": nm * nd, "seconds": round(t, 2),
                     "s_per_pair": round(t / (nm * nd), 2)})
        shutil.rmtree(s.home, ignore_errors=True)
    return {"grid": rows, "datasets": datasets, "models": [s.id for s in order], "per_class": 10}


def to_markdown(res: dict) -> str:
    lines = ["| measurement | value | target | met |", "|---|---|---|---|"]
    for label, o in (res.get("overhead") or {}).items():
        what = f"{o['pairs']} pairs ({', '.join(o['models'])} x {', '.join(o['datasets'])}), {o['per_class']}/class"
        lines.append(f"| Prefect overhead, {label}: flow {o['flow_s']} s vs direct {o['direct_s']} s, {what} "
                     f"| {o['overhead'] * 100:+.1f}% ({o['overhead_s']:+.2f} s) | <= 10% "
                     f"| {'yes' if o['overhead'] <= 0.10 else 'no'} |")
        lines.append(f"| fully cached rerun, {label}: {o['cached_s']} s vs cold {o['cold_s']} s "
                     f"| {o['cached_over_cold'] * 100:.1f}% | <= 5% | {'yes' if o['cached_over_cold'] <= 0.05 else 'no'} |")
    r = res.get("runners")
    if r:
        for label, v in r["runs"].items():
            lines.append(f"| {label}: scoring cold / cached ({r['pairs']} pairs, {r.get('per_class', res['per_class'])}/class, "
                         f"{len(r.get('metrics', []))} metrics) | {v['cold_s']} s / {v['cached_s']} s | | |")
        sp, spw = r["speedup_dask2_vs_dask1"], r["speedup_dask2_vs_dask1_work_only"]
        lines.append(f"| speed-up Dask 2 workers vs 1, CPU-bound scoring (cold - cached) | {spw:.2f}x | >= 1.6x "
                     f"| {'yes' if spw >= 1.6 else 'no'} |")
        lines.append(f"| speed-up Dask 2 vs 1, end to end incl. cluster start | {sp:.2f}x | | |")
        lines.append(f"| Dask fixed overhead (cached run, Dask-2 - thread-2) | {r['dask_fixed_overhead_s']} s | | |")
    g = res.get("growth")
    if g:
        for row in g["grid"]:
            lines.append(f"| growth {row['models']} models x {row['datasets']} datasets (cold, thread-2, 10/class) "
                         f"| {row['seconds']} s ({row['s_per_pair']} s/pair) | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small workload for a smoke run")
    p.add_argument("--per-class", type=int, default=None, help="images per class (default 30, quick 10)")
    p.add_argument("--repeats", type=int, default=None, help="repeats of the overhead pair (default 3, quick 1)")
    p.add_argument("--overhead-datasets", help="datasets of the overhead/cached section (default digits,mnist5k)")
    p.add_argument("--overhead-per-class", type=int, help="images per class there (default --per-class)")
    p.add_argument("--runners-datasets", help="datasets of the runners section (default mnist5k,fashion_mnist)")
    p.add_argument("--runners-per-class", type=int, help="images per class there (default 250, quick 30)")
    p.add_argument("--runners-metrics", help="metrics scored there (default: LEAD and 10 baselines)")
    p.add_argument("--only", default="overhead,runners,growth", help="comma list of overhead,runners,growth")
    p.add_argument("--blas-threads", default="1", help="OMP/MKL/OpenBLAS/torch threads (default 1)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/pipeline[_quick].json)")
    args = p.parse_args(argv)
    args.per_class = args.per_class or (10 if args.quick else 30)
    args.repeats = args.repeats or (1 if args.quick else 3)
    import torch

    torch.set_num_threads(int(args.blas_threads))
    only = set(args.only.split(","))
    res = {"machine": machine(), "per_class": args.per_class, "metrics": METRICS, "quick": args.quick}
    t0 = time.perf_counter()
    # warm-up: start the temporary Prefect server, load datasets and models once (not timed)
    w, _ = run_flow(MODELS[:1], DATASETS[:1], 2, fresh_settings(), metrics=["knn"])
    res["first_flow_startup_s"] = round(w, 2)
    from zoorank.pipeline.pairs import load_subset
    from zoorank.pipeline.stages import SubsetSpec
    for d in DATASETS:
        load_subset(d, SubsetSpec(per_class=args.per_class))
    if "overhead" in only:
        res["overhead"] = bench_overhead(args)
        print(json.dumps({"overhead": res["overhead"]}), flush=True)
    if "runners" in only:
        res["runners"] = bench_runners(args)
        print(json.dumps({"runners": res["runners"]}), flush=True)
    if "growth" in only:
        res["growth"] = bench_growth(args)
        print(json.dumps({"growth": res["growth"]}), flush=True)
    res["total_s"] = round(time.perf_counter() - t0, 1)
    res["machine"]["loadavg_at_end"] = os.getloadavg()
    md = to_markdown(res)
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        "pipeline_quick.json" if args.quick else "pipeline.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str))
    out.with_suffix(".md").write_text(f"# Pipeline benchmark\n\nmachine: {json.dumps(res['machine'], default=str)}\n"
                                      f"per_class {args.per_class}, metrics {', '.join(METRICS)}\n\n{md}\n")
    print(md)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    shutil.rmtree(_TMP, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
