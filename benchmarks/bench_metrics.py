"""Time LEAD's stages and every registered transferability metric, with peak memory.

Usage::

    .venv/bin/python benchmarks/bench_metrics.py --quick            # smoke run, ~1-2 min
    .venv/bin/python benchmarks/bench_metrics.py                    # CIFAR-10 and 100-class sizes
    .venv/bin/python benchmarks/bench_metrics.py --sizes c100 --metrics lead,logme,sfda
    .venv/bin/python benchmarks/bench_metrics.py --timeout 600 --out benchmarks/results/metrics.json

Sizes (synthetic, float32): ``cifar10`` = 50,000 x 2,048, K=10 (CIFAR-10 train set through a
ResNet-50-like backbone); ``c100`` = 10,000 x 1,280, K=100 (a 100-class set through a
MobileNetV2/EfficientNet-like backbone). ``--quick`` shrinks them to 5,000 x 512 (K=10) and
2,000 x 256 (K=100).

Data: class-structured "real-ish" penultimate features: K class means in a 64-d latent space
plus within-class noise, projected to D dimensions, four noisy "positions" passed through a
ReLU and averaged (as global average pooling does), so values are non-negative with exact
zeros, classes overlap partially, and iterative metrics (LogME, NLEEP's GMM, PED) see a
realistic problem. LEEP/NCE get ``source_probs`` (N, 1000): a softmax of random logits in
which every target class favours its own few source classes (correlated, not identical).

Method: the parent process generates the data once per size, saves it as ``.npy`` in a
temporary folder, and runs every job -- one LEAD stage, one metric, ``trace`` or ``eig`` of
:func:`class_ntk_eigenvalues` -- in a *fresh* Python subprocess (``--worker``), so that
memory is isolated and the peak of one job cannot hide another's. A worker imports the
modules and loads the data, resets its RSS high-water mark to the current RSS (Linux:
``echo 5 > /proc/self/clear_refs``; otherwise the mark left by imports and loading would hide
the job's own peak), records the high-water mark (the baseline), runs the job once under a wall
clock (``time.perf_counter``) and a CPU clock (``getrusage`` user+sys, which includes the
BLAS/torch threads), and reports the high-water mark after minus the baseline as the job's
peak memory ("peak dRSS": the extra resident memory at the job's high-water mark, beyond the
float32 features already loaded). The high-water mark is ``VmHWM`` (/proc/self/status),
the per-process counter behind ``ru_maxrss``: ``getrusage`` itself is not used for memory
because in a child it is floored at the parent's RSS at exec time. tracemalloc is not used: it does not see torch's or BLAS's
allocations. Jobs shorter than 1 s are repeated (up to 5 runs in the same process); the
first ("cold", what a pipeline task pays) and the fastest run are both reported. A job that
raises, or runs past ``--timeout`` (default 300 s; ``--eig-timeout``, default 900 s, for the
``method="eig"`` reference; its process group is killed), is recorded
as failed/timed out and the others go on.

LEAD jobs: ``svm_logits`` (stage 1), ``class_ntk_eigenvalues`` (stage 2, ``method="trace"``),
``evolve_logits`` (stage 3, from the saved outputs of stages 1 and 2), ``lead_score`` given
both cached stages (validation + Eq. 7 + cross-entropy), ``lead`` = the metric from scratch
through ``zoorank.metrics.score("lead", ...)`` (the "LEAD total"), and ``lead_breakdown``,
which runs the same steps as ``lead_score`` through the module's internal functions and
times each (input validation, row hashing, SVM, NTK, Eq. 7 + CE) plus the top functions of a
cProfile run of the SVM stage, to say where the time goes. ``trace`` vs ``eig``:
``class_ntk_eigenvalues(method=...)`` at S=64 on each size (the target is stated at K=100).

Targets (issue 2): LEAD total <= 10 s on the CIFAR-10 size (the paper, Table 4: 45 s), and
``trace`` >= 50x faster than ``eig`` at S=64, K=100, on a 2-core CPU. The paper's Table 4
running times on CIFAR-10 (PARC 111 s, NLEEP 1430 s, PACTran 77 s, SFDA 92 s, GBC 26 s,
PED 97 s, LEAD 45 s; hardware not stated, feature extraction excluded) are printed beside
ours as ratios to LEAD. The machine (CPU model, cores, torch threads, BLAS via threadpoolctl)
and the load average before/after every job are recorded: on a shared machine the wall
times include contention, the CPU times less so.

Writes ``--out`` (JSON, default ``benchmarks/results/metrics.json``, or
``metrics_quick.json`` with ``--quick``) and a Markdown report next to it (same name,
``.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SIZES = {
    "cifar10": dict(n=50_000, d=2048, k=10, label="CIFAR-10 size"),
    "c100": dict(n=10_000, d=1280, k=100, label="100-class size"),
}
QUICK_SIZES = {
    "cifar10": dict(n=5_000, d=512, k=10, label="CIFAR-10 quick"),
    "c100": dict(n=2_000, d=256, k=100, label="100-class quick"),
}
N_SOURCE = 1000
S_PER_CLASS = 64

# Hu et al., LEAD, CVPR 2024, Table 4 ("average running time on CIFAR10"); LogME, LEEP, NCE,
# H-score, TransRate, ETran, LFC/LGC and kNN are not in that table.
PAPER_SECONDS = {"parc": 111.0, "nleep": 1430.0, "pactran": 77.0, "sfda": 92.0, "gbc": 26.0,
                 "ped": 97.0, "lead": 45.0}
PAPER_LEAD_PARTS = "NTK 3 s (GPU), initial logits 42 s (CPU)"
TARGET_LEAD_S = 10.0
TARGET_TRACE_SPEEDUP = 50.0

LEAD_STAGES = ["svm_logits", "class_ntk_eigenvalues", "evolve_logits", "lead_score"]


# ----------------------------------------------------------------------------- data
def make_features(n: int, d: int, k: int, *, latent: int = 64, positions: int = 4,
                  seed: int = 0, chunk: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Class-structured non-negative float32 features (N, D) and balanced labels (N,)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    rng.shuffle(y)
    means = rng.normal(0.0, 1.0, (k, latent)).astype(np.float32)
    w = rng.normal(0.0, 1.0 / np.sqrt(latent), (latent, d)).astype(np.float32)
    b = rng.normal(-0.3, 0.3, d).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, chunk):
        yy = y[s:s + chunk]
        z = means[yy] + 0.9 * rng.standard_normal((yy.shape[0], latent), dtype=np.float32)
        pre = z @ w + b
        acc = np.zeros((yy.shape[0], d), dtype=np.float32)
        for _ in range(positions):
            acc += np.maximum(pre + 0.5 * rng.standard_normal(pre.shape, dtype=np.float32), 0.0)
        out[s:s + chunk] = acc / positions
    return out, y.astype(np.int64)


def make_source_probs(labels: np.ndarray, k: int, n_source: int = N_SOURCE, *, seed: int = 1,
                      per_class: int = 3, strength: float = 3.0, agree: float = 0.7,
                      chunk: int = 5000) -> np.ndarray:
    """(N, n_source) float32 softmax of random logits correlated with the target classes.

    Each target class owns ``per_class`` random source classes; for a fraction ``agree`` of
    the samples one of them gets ``+strength`` on its logit, the rest get a random source
    class boosted instead (label noise of the source classifier)."""
    rng = np.random.default_rng(seed)
    n = labels.shape[0]
    owned = rng.permutation(n_source)[: k * per_class].reshape(k, per_class) if k * per_class <= n_source \
        else rng.integers(0, n_source, (k, per_class))
    out = np.empty((n, n_source), dtype=np.float32)
    for s in range(0, n, chunk):
        yy = labels[s:s + chunk]
        m = yy.shape[0]
        logits = rng.standard_normal((m, n_source), dtype=np.float32)
        pick = owned[yy, rng.integers(0, per_class, m)]
        other = rng.integers(0, n_source, m)
        hot = np.where(rng.random(m) < agree, pick, other)
        logits[np.arange(m), hot] += strength
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        out[s:s + chunk] = logits
    return out


# ----------------------------------------------------------------------------- machine
def machine_info() -> dict:
    info: dict = {"platform": platform.platform(), "python": platform.python_version(),
                  "os_cpu_count": os.cpu_count()}
    try:
        info["affinity_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["mem_total_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    import scipy
    import sklearn
    import torch
    info.update(numpy=np.__version__, scipy=scipy.__version__, sklearn=sklearn.__version__,
                torch=torch.__version__, torch_threads=torch.get_num_threads(),
                torch_interop_threads=torch.get_num_interop_threads())
    # torch links its own BLAS/LAPACK (MKL here, statically), which threadpoolctl does not list
    cfg = torch.__config__.show()
    blas = [ln.strip() for ln in cfg.splitlines() if "BLAS_INFO" in ln or "LAPACK_INFO" in ln]
    par = torch.__config__.parallel_info()
    mkl = [ln.strip() for ln in par.splitlines() if "Math Kernel Library" in ln or "OpenBLAS" in ln]
    info["torch_blas"] = "; ".join(mkl or blas) or "unknown"
    info["torch_parallel_backend"] = next((ln.split(":", 1)[1].strip() for ln in par.splitlines()
                                           if ln.startswith("ATen parallel backend")), "unknown")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if os.environ.get(var):
            info[var] = os.environ[var]
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version",
                                   "threading_layer", "architecture", "filepath")}
            for p in threadpool_info()]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


def blas_summary(info: dict) -> str:
    pools = info.get("threadpools")
    if not isinstance(pools, list):
        return str(pools)
    parts = []
    for p in pools:
        lib = Path(p.get("filepath") or "").name
        parts.append(f"{p.get('internal_api')} {p.get('version') or ''} "
                     f"({p.get('user_api')}, {p.get('num_threads')} threads, {lib})".replace("  ", " "))
    return "; ".join(parts)


# ----------------------------------------------------------------------------- worker side
def _proc_status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rss_mib() -> float:
    """High-water resident set size of this process in MiB.

    Linux: ``VmHWM`` of /proc/self/status, the memory map's own high-water mark, which is
    what ``ru_maxrss`` reports for a process that was not forked from a larger one. For a
    worker, ``ru_maxrss`` is floored at the *parent's* RSS at fork/exec time (the kernel
    folds the pre-exec memory map's high-water mark into the signal struct's ``maxrss``),
    so it cannot see a job smaller than the parent. Elsewhere: ``ru_maxrss``."""
    hwm = _proc_status_mib("VmHWM")
    if hwm is not None:
        return hwm
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark to its current RSS (Linux >= 4.0: writing 5
    to /proc/self/clear_refs), so that ru_maxrss afterwards is the peak *of the job* and not
    a high-water mark left by imports or data loading. Returns whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_s() -> float:
    a = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + c.ru_utime + c.ru_stime


def _worker(spec: dict) -> dict:
    """Run one job in this (fresh) process and return its measurements."""
    import importlib

    import torch  # noqa: F401  (imported before the baseline, as every LEAD job needs it)

    from zoorank.metrics import lead as lead_mod
    from zoorank.metrics import registry

    job, data_dir = spec["job"], Path(spec["data_dir"])
    kind = spec["kind"]
    x = np.load(data_dir / "features.npy")
    y = np.load(data_dir / "labels.npy")
    inputs: dict = {}
    call = None
    if kind == "metric":
        metric = registry.get_metric(job)
        importlib.import_module(f"zoorank.metrics.{metric.target.split(':')[0]}")
        if "source_probs" in metric.needs:
            inputs["source_probs"] = np.load(data_dir / "source_probs.npy")
        call = lambda: registry.score(job, x, y, **inputs)  # noqa: E731
    elif job == "svm_logits":
        call = lambda: lead_mod.svm_logits(x, y)  # noqa: E731
    elif job in ("class_ntk_eigenvalues", "ntk_trace", "ntk_eig"):
        method = "eig" if job == "ntk_eig" else "trace"
        call = lambda: lead_mod.class_ntk_eigenvalues(  # noqa: E731
            x, y, samples_per_class=S_PER_CLASS, method=method)
    elif job in ("evolve_logits", "lead_score"):
        li = np.load(data_dir / "log_init.npy")
        ev = np.load(data_dir / "eigenvalues.npy")
        if job == "evolve_logits":
            call = lambda: lead_mod.evolve_logits(li, y, ev)  # noqa: E731
        else:
            call = lambda: lead_mod.lead_score(x, y, log_init=li, class_eigenvalues=ev)  # noqa: E731
    elif job == "lead_breakdown":
        return _lead_breakdown(x, y)
    else:
        raise ValueError(f"unknown job {job!r}")

    load = os.getloadavg()[0]
    reset = _reset_peak()
    base = _rss_mib()
    times, cpus, result = [], [], None
    deadline = time.perf_counter() + 1.0
    for rep in range(5):
        c0, t0 = _cpu_s(), time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu_s() - c0)
        if rep == 0:
            peak = _rss_mib()
        if times[0] >= 1.0 or time.perf_counter() > deadline + 4.0:
            break
    out = {"seconds": times[0], "seconds_min": min(times), "runs": len(times),
           "cpu_seconds": cpus[0], "peak_drss_mib": peak - base, "baseline_rss_mib": base,
           "peak_rss_mib": peak, "hwm_reset": reset, "load1_start": load}
    if job == "svm_logits":
        np.save(data_dir / "log_init.npy", result)
    elif job == "class_ntk_eigenvalues":
        np.save(data_dir / "eigenvalues.npy", result)
    if isinstance(result, float):
        out["value"] = result
    elif isinstance(result, np.ndarray):
        out["result_shape"] = list(result.shape)
        if job.startswith("ntk_"):
            out["eigenvalues"] = [float(v) for v in result]
    return out


def _lead_breakdown(x: np.ndarray, y: np.ndarray) -> dict:
    """The steps of ``lead_score`` (defaults) one by one through lead.py's internals, then a
    cProfile run of the SVM stage (top functions by own time)."""
    import cProfile
    import pstats

    import torch

    from zoorank.metrics import lead as L
    from zoorank.metrics._common import row_keys
    from zoorank.metrics.validation import check_features_labels

    load = os.getloadavg()[0]
    reset = _reset_peak()
    base = _rss_mib()
    steps: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(name, fn):
        c0, t0 = _cpu_s(), time.perf_counter()
        r = fn()
        steps[name] = time.perf_counter() - t0
        cpu[name] = _cpu_s() - c0
        return r

    t_all = time.perf_counter()
    chk = timed("validate (check_features_labels: float64 copy)", lambda: check_features_labels(x, y))
    keys = timed("row_keys (order-independent row hashes)", lambda: row_keys(chk.features, 0))
    svm_kw = dict(svm="ls_ovr", C=1.0, normalisation="platt", cross_fit=5, max_fit_samples=20000,
                  feature_norm="standard", random_state=0, dtype="float32", device="cpu")
    li = timed("svm_logits (stage 1, given keys)",
               lambda: L._svm_logits_checked(chk, base_keys=keys, **svm_kw))
    ev = timed("class_ntk_eigenvalues trace (stage 2, given keys)",
               lambda: L._class_ntk_checked(chk, samples_per_class=S_PER_CLASS,
                                            head_widths=L.DEFAULT_HEAD_WIDTHS, method="trace",
                                            feature_norm="none", random_state=0,
                                            dtype="float32", device="cpu", base_keys=keys))

    def eq7_ce():
        final = L._evolve(li, chk.labels, ev, 1.0, "mean")
        return -float(np.mean(-np.log(np.maximum(final[np.arange(final.shape[0]), chk.labels],
                                                  1e-12))))
    value = timed("evolve (Eq. 7) + cross-entropy", eq7_ce)
    total = time.perf_counter() - t_all
    peak = _rss_mib()

    # SVM sub-steps, timed separately (same computations as _svm_logits_checked)
    sub: dict[str, float] = {}

    def tsub(name, fn):
        t0 = time.perf_counter()
        r = fn()
        sub[name] = time.perf_counter() - t0
        return r
    codes, k = chk.labels, chk.n_classes
    fit_idx = tsub("fit subset + folds", lambda: L._fit_subset(codes, L._purpose_keys(keys, L._SALT_FIT), 20000))
    folds = L.stratified_folds(codes, L._purpose_keys(keys, L._SALT_FOLDS), 5)
    xt = tsub("to torch float32 + standardise (N x D)",
              lambda: L.normalise_features(L.to_torch(chk.features, torch.float32, "cpu"), "standard"))
    targets = L.to_torch(2.0 * L.one_hot(codes, k) - 1.0, torch.float32, "cpu")
    scores = tsub("least-squares SVM, 5-fold cross-fit (Grams + solves + predict)",
                  lambda: L._ls_ovr_crossfit(xt, targets, fit_idx, folds, 5, 1.0))
    scores = scores.to(torch.float64).numpy()
    tsub("Platt scaling (per-class Newton) + renormalise", lambda: L._platt_probabilities(scores, codes, k))

    prof = cProfile.Profile()
    prof.enable()
    L._svm_logits_checked(chk, base_keys=keys, **svm_kw)
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls": nc,
                     "own_s": tt, "cumulative_s": ct})
    rows.sort(key=lambda r: -r["own_s"])
    return {"seconds": total, "cpu_seconds": sum(cpu.values()), "steps": steps, "steps_cpu": cpu,
            "svm_substeps": sub, "svm_profile_top": rows[:12], "value": value,
            "peak_drss_mib": peak - base, "baseline_rss_mib": base, "peak_rss_mib": peak,
            "hwm_reset": reset, "load1_start": load}


def worker_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    result_path = Path(spec["result_path"])
    try:
        with contextlib.redirect_stdout(sys.stderr):
            res = _worker(spec)
        res["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which goes on
        import traceback
        res = {"status": "error", "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc()[-2000:]}
    result_path.write_text(json.dumps(res))


# ----------------------------------------------------------------------------- parent side
def run_job(job: str, kind: str, data_dir: Path, timeout: float) -> dict:
    result_path = data_dir / f"result-{job}.json"
    result_path.unlink(missing_ok=True)
    spec = {"job": job, "kind": kind, "data_dir": str(data_dir), "result_path": str(result_path)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
        status = None
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)          # the worker's own process group
        log, _ = proc.communicate()
        status = "timeout"
    wall = time.perf_counter() - t0
    res: dict
    if status == "timeout":
        res = {"status": "timeout", "error": f"exceeded the {timeout:.0f} s timeout"}
    elif result_path.exists():
        res = json.loads(result_path.read_text())
    else:
        res = {"status": "error", "error": f"worker exited with code {proc.returncode} "
                                           f"(killed for memory?)", "log_tail": (log or "")[-1500:]}
    res.update(job=job, kind=kind, process_wall_s=wall, load_before=list(load0),
               load_after=list(os.getloadavg()))
    return res


def fmt_s(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def fmt_x(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}x" if v < 10 else f"{v:.0f}x"


def describe(res: dict) -> str:
    if res["status"] == "ok":
        return "ok"
    return res["status"] + ": " + res.get("error", "").replace("|", "/").replace("\n", " ")[:120]


def markdown(report: dict) -> str:
    m = report["machine"]
    L = []
    L.append("# Metric benchmark (`benchmarks/bench_metrics.py`)\n")
    L.append(f"Run {report['started']} -> {report['finished']}{' (--quick)' if report['quick'] else ''}; "
             f"timeout {report['timeout_s']:.0f} s per job; every job in a fresh subprocess.\n")
    L.append("## Machine\n")
    L.append(f"- CPU: {m.get('cpu_model', '?')}, {m.get('affinity_cores', m.get('os_cpu_count'))} cores "
             f"usable, {m.get('mem_total_gib', '?')} GiB RAM; {m['platform']}")
    L.append(f"- torch {m['torch']} ({m['torch_threads']} intra-op threads), numpy {m['numpy']}, "
             f"scipy {m['scipy']}, scikit-learn {m['sklearn']}, Python {m['python']}")
    if m.get("torch_blas"):
        L.append(f"- torch's own BLAS/LAPACK: {m['torch_blas']}; ATen parallel backend "
                 f"{m.get('torch_parallel_backend', '?')}")
    L.append(f"- numpy/scipy/sklearn BLAS and OpenMP (threadpoolctl): {blas_summary(m)}")
    la0, la1 = report["load_start"], report["load_end"]
    L.append(f"- Load average (1/5/15 min): {la0[0]:.2f}/{la0[1]:.2f}/{la0[2]:.2f} at the start, "
             f"{la1[0]:.2f}/{la1[1]:.2f}/{la1[2]:.2f} at the end"
             + (" -- the machine was shared, so wall times include contention (CPU times are "
                "user+sys of the job's threads)" if max(la0[0], la1[0]) > 1.5 * m.get('affinity_cores', 2) / 2 else ""))
    L.append("")
    L.append("Columns: **wall** = wall-clock seconds of one cold run in a fresh process (after imports "
             "and data loading); **cpu** = user+sys CPU seconds of that run (all threads); **min** = "
             "fastest of up to 5 runs for jobs under 1 s; **peak dRSS** = resident-memory high-water "
             "mark (VmHWM, reset just before the job) minus the process's RSS before the job (imports "
             "and the float32 features already loaded); "
             "**load** = 1-min load average when the job started. "
             "A metric's time includes its own input validation (float64 copy of the features).\n")
    for size_name, size in report["sizes"].items():
        jobs = size["jobs"]
        n, d, k = size["n"], size["d"], size["k"]
        L.append(f"## {size['label']}: {n:,} x {d:,} float32, K={k}\n")
        lead = jobs.get("lead", {})
        lead_t = lead.get("seconds") if lead.get("status") == "ok" else None
        # LEAD stages
        L.append("### LEAD stages\n")
        L.append("| stage | wall (s) | min (s) | cpu (s) | peak dRSS (MiB) | load | status |")
        L.append("|---|---:|---:|---:|---:|---:|---|")
        stage_sum = 0.0
        for st in LEAD_STAGES + ["lead"]:
            r = jobs.get(st)
            if r is None:
                continue
            name = {"lead": "**LEAD total** (`score(\"lead\")`, from scratch)",
                    "lead_score": "lead_score (given both cached stages)",
                    "class_ntk_eigenvalues": "class_ntk_eigenvalues (trace, S=64)"}.get(st, st)
            if r["status"] == "ok" and st in ("svm_logits", "class_ntk_eigenvalues", "evolve_logits"):
                stage_sum += r["seconds"]
            L.append(f"| {name} | {fmt_s(r.get('seconds'))} | {fmt_s(r.get('seconds_min'))} | "
                     f"{fmt_s(r.get('cpu_seconds'))} | {fmt_s(r.get('peak_drss_mib'))} | "
                     f"{r.get('load1_start', r['load_before'][0]):.1f} | {describe(r)} |")
        L.append("")
        bd = jobs.get("lead_breakdown")
        if bd and bd["status"] == "ok":
            L.append(f"Where LEAD's time goes (`lead_breakdown`: the steps of `lead_score` one by one, "
                     f"total {fmt_s(bd['seconds'])} s wall, load {bd['load1_start']:.1f}):\n")
            L.append("| step | wall (s) | cpu (s) | share |")
            L.append("|---|---:|---:|---:|")
            for name, t in bd["steps"].items():
                L.append(f"| {name} | {fmt_s(t)} | {fmt_s(bd['steps_cpu'][name])} | "
                         f"{100 * t / bd['seconds']:.0f}% |")
            L.append("")
            L.append("SVM stage, sub-steps (separate timed calls):\n")
            L.append("| SVM sub-step | wall (s) |")
            L.append("|---|---:|")
            for name, t in bd["svm_substeps"].items():
                L.append(f"| {name} | {fmt_s(t)} |")
            L.append("")
            L.append("SVM stage, cProfile top functions by own time:\n")
            L.append("| function | calls | own (s) | cumulative (s) |")
            L.append("|---|---:|---:|---:|")
            for r in bd["svm_profile_top"][:8]:
                L.append(f"| `{r['function']}` | {r['calls']} | {fmt_s(r['own_s'])} | {fmt_s(r['cumulative_s'])} |")
            L.append("")
        elif bd:
            L.append(f"lead_breakdown: {describe(bd)}\n")
        # trace vs eig
        tr, eg = jobs.get("ntk_trace"), jobs.get("ntk_eig")
        if tr or eg:
            L.append(f"### class_ntk_eigenvalues: trace vs eig (S={S_PER_CLASS}, K={k}, head 1024-2048)\n")
            L.append("| method | wall (s) | min (s) | cpu (s) | peak dRSS (MiB) | load | status |")
            L.append("|---|---:|---:|---:|---:|---:|---|")
            for name, r in (("trace", tr), ("eig", eg)):
                if r is None:
                    continue
                L.append(f"| {name} | {fmt_s(r.get('seconds'))} | {fmt_s(r.get('seconds_min'))} | "
                         f"{fmt_s(r.get('cpu_seconds'))} | {fmt_s(r.get('peak_drss_mib'))} | "
                         f"{r.get('load1_start', r['load_before'][0]):.1f} | {describe(r)} |")
            sp = size.get("trace_speedup")
            if sp:
                L.append(f"\neig / trace: **{sp['wall']:.0f}x** wall (cold), {sp['wall_min']:.0f}x "
                         f"(trace's best run), {sp['cpu']:.0f}x CPU; eigenvalues agree to "
                         f"{sp['max_rel_diff']:.1e} max relative difference.\n")
            else:
                L.append("")
        # metrics
        L.append("### Metrics\n")
        L.append("| metric | wall (s) | cpu (s) | peak dRSS (MiB) | load | x LEAD (ours) | paper (s) | "
                 "x LEAD (paper) | status |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for name in size["metrics"]:
            r = jobs.get(name)
            if r is None:
                continue
            t = r.get("seconds") if r["status"] == "ok" else None
            ratio = t / lead_t if (t is not None and lead_t) else None
            paper = PAPER_SECONDS.get(name) if size_name == "cifar10" else None
            pr = paper / PAPER_SECONDS["lead"] if paper else None
            label = "**lead** (total)" if name == "lead" else name
            L.append(f"| {label} | {fmt_s(t)} | {fmt_s(r.get('cpu_seconds'))} | "
                     f"{fmt_s(r.get('peak_drss_mib'))} | {r.get('load1_start', r['load_before'][0]):.1f} | "
                     f"{fmt_x(ratio)} | {fmt_s(paper)} | {fmt_x(pr)} | {describe(r)} |")
        L.append("")
        if size_name == "cifar10":
            L.append("Paper times: Hu et al. 2024, Table 4 (average on CIFAR-10, hardware not stated; "
                     f"LEAD = {PAPER_LEAD_PARTS}). Metrics without a paper time are not in that table.\n")
    # targets
    L.append("## Targets (issue 2)\n")
    L.append("| target | measured | met? |")
    L.append("|---|---|---|")
    for t in report["targets"]:
        L.append(f"| {t['target']} | {t['measured']} | {t['met']} |")
    L.append("")
    return "\n".join(L)


def evaluate_targets(report: dict) -> list[dict]:
    out = []
    c10 = report["sizes"].get("cifar10")
    if c10:
        r = c10["jobs"].get("lead")
        quick = report["quick"]
        tgt = f"LEAD total <= {TARGET_LEAD_S:.0f} s on 50,000 x 2,048, K=10 (paper 45 s)"
        if r and r["status"] == "ok":
            met = "yes" if r["seconds"] <= TARGET_LEAD_S else "no"
            if quick:
                met = f"n/a (--quick size; would be {met})"
            out.append({"target": tgt, "measured": f"{r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU "
                        f"(load {r['load1_start']:.1f}); {45.0 / r['seconds']:.1f}x faster than the paper",
                        "met": met})
        elif r:
            out.append({"target": tgt, "measured": describe(r), "met": "no"})
    c100 = report["sizes"].get("c100")
    if c100:
        sp = c100.get("trace_speedup")
        tgt = f"trace >= {TARGET_TRACE_SPEEDUP:.0f}x faster than eig at S=64, K=100"
        if sp:
            met = "yes" if sp["wall"] >= TARGET_TRACE_SPEEDUP else "no"
            if report["quick"]:
                met = f"n/a (--quick size; would be {met})"
            out.append({"target": tgt, "measured": f"{sp['wall']:.0f}x wall (cold trace run), "
                        f"{sp['wall_min']:.0f}x vs trace's best run, {sp['cpu']:.0f}x CPU", "met": met})
        else:
            out.append({"target": tgt, "measured": "not measured (a job failed or was not run)", "met": "no"})
    return out


def main(argv=None) -> int:
    from zoorank.metrics.registry import METRICS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--render", metavar="JSON", help="only re-write the Markdown report of a saved JSON")
    p.add_argument("--sizes", default="cifar10,c100", help="comma list of: " + ", ".join(SIZES))
    p.add_argument("--metrics", default="all",
                   help="comma list of registered metric names (default all: " + ", ".join(METRICS) + ")")
    p.add_argument("--no-stages", action="store_true", help="skip the LEAD stage jobs and the breakdown")
    p.add_argument("--no-eig", action="store_true", help="skip trace vs eig")
    p.add_argument("--quick", action="store_true", help="small sizes (5,000 x 512 and 2,000 x 256) for a smoke run")
    p.add_argument("--timeout", type=float, default=300.0, help="per-job timeout in seconds (default 300)")
    p.add_argument("--eig-timeout", type=float, default=900.0,
                   help="timeout of the method='eig' reference job (default 900 s; it is slow by design)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/metrics.json, "
                                               "metrics_quick.json with --quick); the .md goes beside it")
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0
    if args.render:
        saved = Path(args.render)
        report = json.loads(saved.read_text())
        saved.with_suffix(".md").write_text(markdown(report))
        print(f"wrote {saved.with_suffix('.md')}")
        return 0

    sizes_table = QUICK_SIZES if args.quick else SIZES
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        if s not in sizes_table:
            p.error(f"unknown size {s!r} (known: {', '.join(SIZES)})")
    metrics = list(METRICS) if args.metrics == "all" else [m.strip() for m in args.metrics.split(",") if m.strip()]
    for m in metrics:
        if m not in METRICS:
            p.error(f"unknown metric {m!r} (known: {', '.join(METRICS)})")
    if "lead" in metrics:                      # LEAD total first, so ratios are available early
        metrics = ["lead"] + [m for m in metrics if m != "lead"]
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        "metrics_quick.json" if args.quick else "metrics.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    md_path = out.with_suffix(".md")

    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": args.quick,
              "timeout_s": args.timeout, "load_start": list(os.getloadavg()),
              "machine": machine_info(), "sizes": {}}

    def save():
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        report["load_end"] = list(os.getloadavg())
        report["targets"] = evaluate_targets(report)
        out.write_text(json.dumps(report, indent=1))
        md_path.write_text(markdown(report))

    tmp_root = Path(tempfile.mkdtemp(prefix="zoorank-bench-"))
    try:
        for s in sizes:
            cfg = sizes_table[s]
            n, d, k = cfg["n"], cfg["d"], cfg["k"]
            print(f"== {cfg['label']}: {n} x {d}, K={k}", flush=True)
            data_dir = tmp_root / s
            data_dir.mkdir()
            t0 = time.perf_counter()
            x, y = make_features(n, d, k, seed=0)
            np.save(data_dir / "features.npy", x)
            np.save(data_dir / "labels.npy", y)
            np.save(data_dir / "source_probs.npy", make_source_probs(y, k))
            del x
            print(f"   data generated in {time.perf_counter() - t0:.1f} s", flush=True)
            size = {"n": n, "d": d, "k": k, "label": cfg["label"], "metrics": metrics, "jobs": {}}
            report["sizes"][s] = size
            jobs: list[tuple[str, str]] = []
            if not args.no_stages:
                jobs += [(st, "stage") for st in LEAD_STAGES]
            jobs += [(m, "metric") for m in metrics[:1] if m == "lead"]
            if not args.no_stages:
                jobs.append(("lead_breakdown", "stage"))
            if not args.no_eig:
                jobs += [("ntk_trace", "ntk"), ("ntk_eig", "ntk")]
            jobs += [(m, "metric") for m in metrics if m != "lead"]
            for job, kind in jobs:
                if job in ("evolve_logits", "lead_score") and not (
                        (data_dir / "log_init.npy").exists() and (data_dir / "eigenvalues.npy").exists()):
                    size["jobs"][job] = {"status": "skipped", "error": "needs the outputs of stages 1 and 2",
                                         "job": job, "kind": kind, "load_before": list(os.getloadavg())}
                    continue
                res = run_job(job, kind, data_dir, args.eig_timeout if job == "ntk_eig" else args.timeout)
                size["jobs"][job] = res
                msg = (f"{res['seconds']:.3f} s wall, {res.get('cpu_seconds', 0):.2f} s cpu, "
                       f"peak dRSS {res['peak_drss_mib']:.0f} MiB" if res["status"] == "ok" else describe(res))
                print(f"   {job:24s} {msg} (load {res['load_before'][0]:.1f})", flush=True)
                tr, eg = size["jobs"].get("ntk_trace"), size["jobs"].get("ntk_eig")
                if job == "ntk_eig" and tr and eg and tr["status"] == eg["status"] == "ok":
                    a, b = np.array(tr["eigenvalues"]), np.array(eg["eigenvalues"])
                    size["trace_speedup"] = {
                        "wall": eg["seconds"] / tr["seconds"], "wall_min": eg["seconds"] / tr["seconds_min"],
                        "cpu": eg["cpu_seconds"] / max(tr["cpu_seconds"], 1e-9),
                        "max_rel_diff": float(np.max(np.abs(a - b) / np.abs(b)))}
                save()
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    save()
    print(md_path.read_text())
    print(f"wrote {out} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
