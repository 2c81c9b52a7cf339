"""Run every benchmark script in ``benchmarks/`` and write one summary (JSON + Markdown).

Usage::

    .venv/bin/python benchmarks/run_all.py                 # quick flags (smoke sizes), minutes
    .venv/bin/python benchmarks/run_all.py --full          # each script's default (full) sizes
    .venv/bin/python benchmarks/run_all.py --only pipeline,codecs --timeout 900

Each ``bench_*.py`` runs in its own subprocess (``sys.executable``) with the flags below (quick
by default). Scripts not listed here get ``--quick`` when their source mentions it, else no
flags. A script that fails or times out is recorded as such and the others still run.

Results: each script's own report when it writes one (``results/metrics[_quick].json``,
``results/pipeline[_quick].json``), JSON lines it printed (``bench_extract.py``), and the
Markdown tables it printed (``bench_codecs.py``), gathered with the machine's description in
``benchmarks/results/summary.json`` and ``summary.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: script -> (quick flags, full flags, report file written by the script (quick, full) or None)
KNOWN = {
    "bench_metrics.py": (["--quick"], [], ("metrics_quick.json", "metrics.json")),
    "bench_codecs.py": (["--rows", "5000", "--repeats", "1"], [], None),
    "bench_extract.py": (["--models", "cnn_mnist", "--datasets", "digits", "--n", "128", "--repeats", "1"], [], None),
    "bench_pipeline.py": (["--quick"], [], ("pipeline_quick.json", "pipeline.json")),
    "bench_ranking_stages.py": (["--per-class", "3", "--out", str(RESULTS / "ranking_stages_quick.md")], [], None),
}


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "hostname_hash": hash(platform.node()) & 0xFFFF}
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                           if line.startswith("model name"))
        info["mem_gib"] = round(int(next(line.split()[1] for line in open("/proc/meminfo")
                                         if line.startswith("MemTotal"))) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    try:
        out = subprocess.run([sys.executable, "-c", "import torch, numpy, sklearn;"
                              "print(torch.__version__, numpy.__version__, sklearn.__version__,"
                              "torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', sep='|')"],
                             capture_output=True, text=True, timeout=120).stdout.strip().split("|")
        info.update(torch=out[0], numpy=out[1], sklearn=out[2], gpu=None if out[3] == "-" else out[3])
    except Exception:  # noqa: BLE001 - the description is best effort
        pass
    info["loadavg"] = os.getloadavg()
    return info


def flags_for(script: Path, full: bool) -> tuple[list[str], str | None]:
    if script.name in KNOWN:
        quick, full_flags, report = KNOWN[script.name]
        return (full_flags if full else quick), (report[1 if full else 0] if report else None)
    return ([] if full or "--quick" not in script.read_text(errors="replace") else ["--quick"]), None


def run_one(script: Path, full: bool, timeout: float) -> dict:
    flags, report_name = flags_for(script, full)
    cmd = [sys.executable, str(script), *flags]
    print(f"== {script.name} {' '.join(flags)}", flush=True)
    t0 = time.perf_counter()
    entry = {"script": script.name, "flags": flags}
    report_path = RESULTS / report_name if report_name else None
    before = report_path.stat().st_mtime if report_path and report_path.exists() else None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
        entry.update(rc=proc.returncode, status="ok" if proc.returncode == 0 else "failed")
        stdout, stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        entry.update(rc=None, status=f"timed out after {timeout:.0f} s")
        stdout = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    json_lines, table_lines = [], []
    for line in stdout.splitlines():
        s = line.strip()
        if s.startswith("{") and s.endswith("}"):
            try:
                json_lines.append(json.loads(s))
                continue
            except json.JSONDecodeError:
                pass
        if s.startswith("|"):
            table_lines.append(s)
    entry["json_lines"] = json_lines
    entry["tables"] = table_lines
    if report_path and report_path.exists() and report_path.stat().st_mtime != before:
        entry["report"] = str(report_path.relative_to(HERE.parent))
        try:
            entry["report_data"] = json.loads(report_path.read_text())
        except json.JSONDecodeError:
            pass
        md = report_path.with_suffix(".md")
        if md.exists():
            entry["report_md"] = md.read_text()
    if entry["status"] != "ok":
        entry["stderr_tail"] = stderr[-3000:]
    print(f"   {entry['status']} in {entry['seconds']} s", flush=True)
    return entry


def _json_table(rows: list[dict]) -> list[str]:
    flat = [r for r in rows if isinstance(r, dict)]
    if not flat:
        return []
    cols = list(dict.fromkeys(k for r in flat for k, v in r.items() if not isinstance(v, (dict, list))))
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in flat:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return out


def markdown(summary: dict) -> str:
    m = summary["machine"]
    lines = ["# Benchmark summary", "",
             f"Run {summary['started']} ({'full' if summary['full'] else 'quick'} flags), "
             f"{summary['total_s']} s in all.", "",
             "## Machine", "", "| field | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in m.items()]
    lines += ["", "## Scripts", "", "| script | flags | status | seconds | report |", "|---|---|---|---|---|"]
    for e in summary["benchmarks"]:
        lines.append(f"| {e['script']} | `{' '.join(e['flags'])}` | {e['status']} | {e['seconds']} | "
                     f"{e.get('report', '-')} |")
    for e in summary["benchmarks"]:
        lines += ["", f"## {e['script']}", ""]
        if e.get("report_md"):
            body = e["report_md"].splitlines()
            lines += [ln for ln in body if not ln.startswith("# ")]
        elif e["tables"] or e["json_lines"]:
            lines += e["tables"]
            if e["json_lines"]:
                lines += [""] + _json_table(e["json_lines"])
        else:
            lines.append("(no tabular output)")
        if e["status"] != "ok":
            lines += ["", "```", e.get("stderr_tail", "")[-1500:], "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="each script's full (default) sizes instead of quick flags")
    p.add_argument("--only", help="comma list of script names without bench_ / .py (e.g. pipeline,codecs)")
    p.add_argument("--timeout", type=float, default=1800.0, help="per-script timeout in seconds")
    args = p.parse_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted or s.name in wanted]
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "full": args.full, "machine": machine(),
               "benchmarks": []}
    t0 = time.perf_counter()
    for script in scripts:
        summary["benchmarks"].append(run_one(script, args.full, args.timeout))
    summary["total_s"] = round(time.perf_counter() - t0, 1)
    summary["machine"]["loadavg_end"] = os.getloadavg()
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (RESULTS / "summary.md").write_text(markdown(summary))
    print(f"wrote {RESULTS / 'summary.json'} and {RESULTS / 'summary.md'}")
    return 0 if all(e["status"] == "ok" for e in summary["benchmarks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
