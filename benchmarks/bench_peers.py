"""zoorank's baselines side by side with their reference implementations (issue 17).

```bash
.venv/bin/python benchmarks/bench_peers.py --refs /path/to/refs        # both sizes, every metric
.venv/bin/python benchmarks/bench_peers.py --refs DIR --sizes small --metrics leep,nce
.venv/bin/python benchmarks/bench_peers.py --refs DIR --metrics nleep --threads 1  # one thread a side
.venv/bin/python benchmarks/bench_peers.py                             # zoorank alone (says so)
```

``DIR`` holds the reference repositories at the commits listed in ``benchmarks/README.md``
(``DIR/LogME``, ``DIR/tllib``, ``DIR/SFDA``, ``DIR/PED``, ``DIR/ETran``). They are never
imported by the package: each reference function is loaded from its file inside a fresh
child process of this script.

Method: the seeded arrays of each size (float32 features, int64 labels, float32 source
probabilities over 1,000 classes; the generators of ``bench_metrics.py``) are written once
as ``.npy`` files in a temporary folder. Every measurement is a fresh ``python`` process
that imports numpy, scipy, scikit-learn and torch (the same baseline for both sides), loads
the arrays, then times one call (``perf_counter``) and reads its peak resident memory
(``VmHWM``, the counter behind ``ru_maxrss``; peak of the whole process, data included).
Reference and zoorank runs alternate (ref, zoorank, zoorank, ref, ...) so that both see the
same machine load; the table reports the fastest run of each side and the load average.
``--threads N`` sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` to
N in every child (both sides alike): on a shared machine multi-threaded BLAS calls stall on
thread wake-ups, so one thread a side compares the work of the two implementations; the
default leaves the libraries' own thread counts (all cores).

Shims (in the child only): ``numba`` is not installed, so thuml's ``@njit`` is replaced by
the identity (``LogME.py``'s fixed-point path runs the same numpy/LAPACK calls);
``from utils import iterative_A`` (SFDA, PED, ETran) is served by a module holding that one
function, compiled from the repository's own ``utils.py`` (the rest of that file imports
their model zoo); the references' ``print`` output is discarded. The N-LEEP reference seeds
``np.random`` with 0 because its GaussianMixture has no ``random_state``.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = {"small": (10_000, 1_024, 10), "big": (50_000, 2_048, 10)}
N_SOURCE = 1_000

# metric -> (reference label, zoorank call described, inputs needed besides features/labels)
METRICS = {
    "logme": ("thuml/LogME `LogME.py` (`LogME().fit`)", "logme_score(thuml_compat=True)"),
    "leep": ("thuml/LogME `LEEP.py`", "leep_score"),
    "nce": ("thuml/LogME `NCE.py` (of the argmax)", "nce_score"),
    "hscore": ("tllib `ranking/hscore.py` (`h_score`)", "hscore"),
    "reg_hscore": ("tllib `ranking/hscore.py` (`regularized_h_score`)",
                   "regularized_hscore x N/(N-1)"),
    "transrate": ("tllib `ranking/transrate.py`", "transrate_score"),
    "sfda": ("TencentARC/SFDA `metrics.py` (`SFDA_Score`)", "sfda_score"),
    "nleep": ("TencentARC/SFDA `metrics.py` (`NLEEP`)",
              "nleep_score(covariance_type='full', log=False)"),
    "ped": ("lixiaotong97/PED `metrics.py` (`PED_Score`, general_X = X)", "ped_score"),
    "etran": ("mgholamikn/ETran `metrics.py` (`Energy_Score` + `LDA_Score`)",
              "etran_components"),
    "lead": ("(none; paper 45 s)", "lead_score"),
}
NEEDS_PROBS = {"leep", "nce"}


# ----------------------------------------------------------------------------- child side
from bench_metrics import _proc_status_mib  # noqa: E402  (this folder is on sys.path when run as a script)


def _load_by_path(name: str, path: Path) -> types.ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"reference file {path} not found (see benchmarks/README.md)")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(mod)
    return mod


def _shim_numba() -> None:
    if importlib.util.find_spec("numba") is None:
        fake = types.ModuleType("numba")
        fake.njit = lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))
        sys.modules["numba"] = fake


def _shim_utils(repo: Path) -> None:
    """``utils`` with only ``iterative_A``, compiled from ``repo/utils.py`` itself."""
    tree = ast.parse((repo / "utils.py").read_text())
    fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "iterative_A"]
    if not fn:
        raise RuntimeError(f"{repo / 'utils.py'} has no iterative_A")
    mod = types.ModuleType("utils")
    import numpy as np
    mod.np = np
    exec(compile(ast.Module(body=fn, type_ignores=[]), str(repo / "utils.py"), "exec"), mod.__dict__)
    sys.modules["utils"] = mod


def _reference_call(metric: str, refs: Path, x, y, p):
    """The reference's own function on the loaded arrays (timed by the caller)."""
    import numpy as np
    if metric in ("logme", "leep", "nce"):
        _shim_numba()
        if metric == "logme":
            mod = _load_by_path("ref_logme", refs / "LogME" / "LogME.py")
            return lambda: mod.LogME(regression=False).fit(x, y)
        if metric == "leep":
            mod = _load_by_path("ref_leep", refs / "LogME" / "LEEP.py")
            return lambda: mod.LEEP(p, y)
        mod = _load_by_path("ref_nce", refs / "LogME" / "NCE.py")
        return lambda: mod.NCE(np.argmax(p, axis=1), y)
    if metric in ("hscore", "reg_hscore"):
        mod = _load_by_path("ref_hscore", refs / "tllib" / "tllib" / "ranking" / "hscore.py")
        return (lambda: mod.h_score(x, y)) if metric == "hscore" else \
            (lambda: mod.regularized_h_score(x, y))
    if metric == "transrate":
        mod = _load_by_path("ref_transrate", refs / "tllib" / "tllib" / "ranking" / "transrate.py")
        return lambda: mod.transrate(x, y)
    if metric in ("sfda", "nleep"):
        _shim_utils(refs / "SFDA")
        mod = _load_by_path("ref_sfda", refs / "SFDA" / "metrics.py")
        if metric == "sfda":
            return lambda: mod.SFDA_Score(x, y)          # overwrites this child's x (as it does)

        def nleep():
            np.random.seed(0)                            # its GaussianMixture is unseeded
            return mod.NLEEP(x, y, component_ratio=5)
        return nleep
    if metric == "ped":
        _shim_utils(refs / "PED")
        mod = _load_by_path("ref_ped", refs / "PED" / "metrics.py")
        # evaluate_metric_cpu.py defaults: --step 0.1 --nsigma 0.6 --er 0.5 --constant 1 --type SFDA
        return lambda: mod.PED_Score(x, y, general_X=x, exit_ratio=0.5, time_step=0.1,
                                     type="SFDA", nsigma=0.6, constant=1.0)
    if metric == "etran":
        _shim_utils(refs / "ETran")
        mod = _load_by_path("ref_etran", refs / "ETran" / "metrics.py")
        # evaluate_metric.py: Energy_Score(X, 0.5, 'bot') and LDA_Score(X, y)
        return lambda: {"energy": float(mod.Energy_Score(x, 0.5, "bot")),
                        "lda": float(mod.LDA_Score(x, y))}
    raise ValueError(f"no reference for metric {metric!r}")


def _zoorank_call(metric: str, x, y, p):
    from zoorank.metrics import etran, hscore, lead, leep, logme, nce, nleep, ped, sfda, transrate
    n = x.shape[0]
    calls = {
        "logme": lambda: logme.logme_score(x, y, thuml_compat=True),
        "leep": lambda: leep.leep_score(x, y, source_probs=p),
        "nce": lambda: nce.nce_score(x, y, source_probs=p),
        "hscore": lambda: hscore.hscore(x, y),
        # tllib's value is ours times N/(N-1) (its np.cov of the class means is unbiased)
        "reg_hscore": lambda: hscore.regularized_hscore(x, y) * n / (n - 1),
        "transrate": lambda: transrate.transrate_score(x, y),
        "sfda": lambda: sfda.sfda_score(x, y),
        "nleep": lambda: nleep.nleep_score(x, y, covariance_type="full", log=False),
        "ped": lambda: ped.ped_score(x, y),
        "etran": lambda: etran.etran_components(x, y),
        "lead": lambda: lead.lead_score(x, y),
    }
    return calls[metric]


def child_main(spec: dict) -> None:
    import numpy as np
    import scipy.linalg  # noqa: F401  same imports on both sides: equal baseline memory
    import sklearn.mixture  # noqa: F401
    import torch  # noqa: F401
    data = Path(spec["data"])
    x = np.load(data / "features.npy")
    y = np.load(data / "labels.npy")
    p = np.load(data / "probs.npy") if spec["metric"] in NEEDS_PROBS else None
    if spec["impl"] == "ref":
        fn = _reference_call(spec["metric"], Path(spec["refs"]), x, y, p)
    else:
        fn = _zoorank_call(spec["metric"], x, y, p)
    rss_before = _proc_status_mib("VmRSS")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        value = fn()
    seconds = time.perf_counter() - t0
    value = {k: float(v) for k, v in value.items()} if isinstance(value, dict) else float(value)
    print("RESULT " + json.dumps({"seconds": seconds, "value": value,
                                  "rss_before_mib": rss_before,
                                  "peak_rss_mib": _proc_status_mib("VmHWM")}))


def make_data_main(out: Path, n: int, d: int, k: int) -> None:
    import numpy as np
    sys.path.insert(0, str(HERE))
    from bench_metrics import make_features, make_source_probs
    x, y = make_features(n, d, k, seed=0)
    np.save(out / "features.npy", x)
    np.save(out / "labels.npy", y)
    np.save(out / "probs.npy", make_source_probs(y, k, N_SOURCE, seed=1))


# ----------------------------------------------------------------------------- parent side
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_child(args: list[str], timeout: float, threads: int | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if threads is not None:
        env.update({var: str(threads) for var in THREAD_VARS})
    load = os.getloadavg()[0]
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "load1": load}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "load1": load}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail), "load1": load}


def _agreement(ref, zoo) -> float | None:
    """Largest relative difference over the values (components for ETran)."""
    if ref is None or zoo is None:
        return None
    pairs = [(ref[k], zoo[k]) for k in ref] if isinstance(ref, dict) else [(ref, zoo)]
    return max(abs(a - b) / max(abs(a), 1e-300) for a, b in pairs)


def _best(runs: list[dict]) -> dict | None:
    ok = [r for r in runs if "error" not in r]
    return min(ok, key=lambda r: r["seconds"]) if ok else None


def _fmt(v, spec="{:.3g}") -> str:
    return "-" if v is None else spec.format(v)


def markdown(report: dict) -> str:
    lines = ["# zoorank vs reference implementations (`benchmarks/bench_peers.py`)", ""]
    m = report["machine"]
    lines += [f"Machine: {m.get('cpu_model', '?')}, {m.get('cores')} cores; "
              f"load average (1 min) during the runs {m['load_min']:.1f}-{m['load_max']:.1f} "
              f"({'shared, loaded' if m['load_max'] > 1.5 else 'idle'}). "
              f"Started {report['started']}, {report['elapsed_s']:.0f} s.", ""]
    if not report["refs"]:
        lines += ["**References not run** (no `--refs DIR`): zoorank alone.", ""]
    if report.get("threads"):
        lines += [f"Threads: {report['threads']} per process on both sides "
                  f"({', '.join(THREAD_VARS)}).", ""]
    lines += ["Times: the fastest of the runs of each side (fresh process each, after imports "
              "and loading). Peak RSS: the process's high-water mark (data, imports and "
              "the call). Agreement: largest relative difference of the values.", ""]
    for size, rows in report["results"].items():
        n, d, k = SIZES[size]
        lines += [f"## {n:,} x {d:,} float32, K={k}, source probabilities over {N_SOURCE:,} classes", "",
                  "| metric | reference | zoorank call | ref s | zoorank s | speed-up | "
                  "peak RSS ref / zoorank (MiB) | memory ratio | agreement (rel.) | target met |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for metric, entry in rows.items():
            ref, zoo = _best(entry["ref"]), _best(entry["zoorank"])
            ref_label, zoo_label = METRICS[metric]
            speed = ref["seconds"] / zoo["seconds"] if ref and zoo else None
            mem = zoo["peak_rss_mib"] / ref["peak_rss_mib"] if ref and zoo else None
            agree = _agreement(ref and ref["value"], zoo and zoo["value"])
            met = "-" if speed is None else ("yes" if speed >= 1.0 and mem <= 1.2 else "**no**")
            if metric == "lead" and size == "big" and zoo:      # target: <= 10 s on 50,000 x 2,048
                met = "yes (<= 10 s)" if zoo["seconds"] <= 10 else "**no** (> 10 s)"
            errs = [r["error"] for r in entry["ref"] + entry["zoorank"] if "error" in r]
            threads = {r.get("threads") for r in entry["ref"] + entry["zoorank"]}
            name = metric if threads in ({None}, {report.get("threads")}) else \
                f"{metric} ({'/'.join(str(t or 'default') for t in sorted(threads, key=str))} " \
                f"thread{'' if threads == {1} else 's'} a side)"
            lines.append(
                f"| {name} | {ref_label} | `{zoo_label}` | {_fmt(ref and ref['seconds'])} | "
                f"{_fmt(zoo and zoo['seconds'])} | {_fmt(speed, '{:.2f}x')} | "
                f"{_fmt(ref and ref['peak_rss_mib'], '{:.0f}')} / {_fmt(zoo and zoo['peak_rss_mib'], '{:.0f}')} | "
                f"{_fmt(mem, '{:.2f}')} | {_fmt(agree, '{:.1e}')} | {met}"
                + (f" (errors: {'; '.join(errs)})" if errs else "") + " |")
        lines.append("")
    return "\n".join(lines)


def machine() -> dict:
    info = {"cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refs", type=Path, help="folder with the reference repositories")
    ap.add_argument("--sizes", default="small,big", help=f"comma list of {', '.join(SIZES)}")
    ap.add_argument("--metrics", default=",".join(METRICS), help="comma list of metrics")
    ap.add_argument("--repeats", type=int, default=2, help="runs per side (alternating)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    ap.add_argument("--threads", type=int, help="BLAS/OpenMP threads of every child (default: "
                    "the libraries' own)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "peers.md")
    ap.add_argument("--render", nargs="+", type=Path, metavar="JSON",
                    help="merge these reports (e.g. one per size) into --out and exit")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--make-data", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    if args.make_data:
        make_data_main(Path(args.make_data[0]), *map(int, args.make_data[1:]))
        return 0
    if args.render:
        write_report(merge_reports([json.loads(p.read_text()) for p in args.render]), args.out)
        return 0
    sizes = [s for s in args.sizes.split(",") if s]
    metrics = [m for m in args.metrics.split(",") if m]
    for bad in [s for s in sizes if s not in SIZES] + [m for m in metrics if m not in METRICS]:
        ap.error(f"unknown size or metric {bad!r} (sizes: {', '.join(SIZES)}; metrics: {', '.join(METRICS)})")
    if args.refs is not None and not args.refs.is_dir():
        ap.error(f"--refs {args.refs} is not a folder")
    if args.threads is not None and args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    started, t_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.perf_counter()
    report = {"started": started, "refs": str(args.refs) if args.refs else None,
              "machine": machine(), "threads": args.threads, "results": {}}
    loads = []
    with tempfile.TemporaryDirectory(prefix="zoorank_peers_") as tmp:
        for size in sizes:
            data = Path(tmp) / size
            data.mkdir()
            n, d, k = SIZES[size]
            made = run_child(["--make-data", str(data), str(n), str(d), str(k)], args.timeout)
            if not (data / "probs.npy").exists():
                raise SystemExit(f"could not make the {size} data: {made.get('error')}")
            rows = report["results"].setdefault(size, {})
            for metric in metrics:
                entry = rows.setdefault(metric, {"ref": [], "zoorank": []})
                sides = ["ref", "zoorank"] if args.refs and metric != "lead" else ["zoorank"]
                for r in range(args.repeats):
                    for impl in (sides if r % 2 == 0 else sides[::-1]):
                        spec = {"impl": impl, "metric": metric, "data": str(data),
                                "refs": str(args.refs) if args.refs else None}
                        res = run_child(["--child", json.dumps(spec)], args.timeout, args.threads)
                        res["threads"] = args.threads
                        loads.append(res["load1"])
                        entry[impl].append(res)
                        report["elapsed_s"] = time.perf_counter() - t_start
                        report["machine"].update(load_min=min(loads), load_max=max(loads))
                        write_report(report, args.out, quiet=True)     # survives an interruption
                        print(f"[peers] {size} {metric:10s} {impl:7s} "
                              + (res["error"] if "error" in res else
                                 f"{res['seconds']:8.3f} s  {res['peak_rss_mib']:7.0f} MiB  {res['value']}"),
                              flush=True)
    report["elapsed_s"] = time.perf_counter() - t_start
    report["machine"].update(load_min=min(loads), load_max=max(loads))
    write_report(report, args.out)
    return 0


def merge_reports(reports: list[dict]) -> dict:
    """One report from several runs (e.g. one per size): results side by side, the load
    range over all of them, the earliest start and the summed elapsed time."""
    out = {"started": min(r["started"] for r in reports), "refs": reports[0]["refs"],
           "machine": dict(reports[0]["machine"]), "results": {},
           "elapsed_s": sum(r["elapsed_s"] for r in reports)}
    out["machine"]["load_min"] = min(r["machine"]["load_min"] for r in reports)
    out["machine"]["load_max"] = max(r["machine"]["load_max"] for r in reports)
    for r in reports:
        for size, rows in r["results"].items():
            out["results"].setdefault(size, {}).update(rows)
    return out


def write_report(report: dict, out: Path, *, quiet: bool = False) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out.write_text(markdown(report))
    if not quiet:
        print(f"[peers] wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    raise SystemExit(main())
