"""Progress of a ranking on stderr (``zoorank rank``).

Modes (:func:`enable`):

* ``live`` (a terminal): one ``rich`` bar per stage kind (features, SVM logits, NTK
  eigenvalues, scores) with counts and time left, and a line per (model, dataset) pair as it
  finishes, printed above the bars;
* ``lines`` (not a terminal: a pipe, a file, CI): one line per finished pair;
* ``verbose`` (``zoorank rank -v``): one line per finished stage, as before, plus the pair lines.

Events come from the Prefect tasks (:func:`stage_done`) in this process; with the Dask runner the
tasks run in worker processes and only the final table is shown. Thread-safe.
"""
from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger("zoorank.reporting.progress")

STAGE_LABELS = {"features": "features", "svm_logits": "SVM logits", "ntk_eigenvalues": "head NTK",
                "network_ntk_eigenvalues": "network NTK", "score": "scores"}
_lock = threading.RLock()
_state: dict = {"mode": None, "stream": None, "progress": None, "bars": {}, "pairs": {}, "per_pair": 0,
                "done_pairs": 0, "n_pairs": 0}


def _interactive(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM", "") != "dumb"


def enable(mode: str = "auto", stream=None) -> str:
    """Turn progress on: ``auto`` (``live`` on a terminal, else ``lines``), ``live``, ``lines``,
    ``verbose``. Returns the mode in effect."""
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "live" if _interactive(stream) else "lines"
    if mode not in ("live", "lines", "verbose"):
        raise ValueError(f"progress mode must be auto, live, lines or verbose, got {mode!r}")
    with _lock:
        _state.update(mode=mode, stream=stream)
    ours = [h for h in log.handlers if getattr(h, "_zoorank", False)]
    for h in ours:
        h.setStream(stream)             # a later command in the same process writes to its own stream
    if mode == "verbose" and not ours:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("  %(message)s"))
        handler._zoorank = True
        log.addHandler(handler)
    log.setLevel(logging.INFO if mode == "verbose" else logging.WARNING)
    log.propagate = False
    return mode


def plan(n_pairs: int, stage_totals: dict[str, int]) -> None:
    """Start counting: ``n_pairs`` pairs, ``stage_totals[stage]`` events expected per stage kind
    (``score``: one per metric per pair)."""
    with _lock:
        if _state["mode"] is None:
            return
        _state.update(pairs={}, done_pairs=0, n_pairs=n_pairs,
                      per_pair=sum(stage_totals.values()) // max(1, n_pairs), bars={})
        if _state["mode"] != "live":
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        console = Console(file=_state["stream"], highlight=False)
        prog = Progress(TextColumn("{task.description:<16}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                        TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                        console=console, transient=True, refresh_per_second=4)
        for stage, total in stage_totals.items():
            if total:
                _state["bars"][stage] = prog.add_task(STAGE_LABELS.get(stage, stage), total=total)
        prog.start()
        _state["progress"] = prog


def _emit(text: str) -> None:
    prog = _state["progress"]
    try:
        if prog is not None:
            prog.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=_state["stream"], flush=True)
    except (ValueError, OSError):  # the stream went away (closed pipe): progress is never fatal
        _state.update(mode=None, progress=None)


def stage_done(pair: str, result) -> None:
    """One finished stage of ``pair`` (``"model / dataset"``, ``" [metric]"`` for a score)."""
    how = "skipped" if "skipped" in result.info else ("cached" if result.cache_hit else "computed")
    log.info("%-40s %-16s %-8s %7.2fs", pair, result.stage, how, result.seconds)
    with _lock:
        if _state["mode"] is None:
            return
        name, _, metric = pair.partition(" [")
        metric = metric.rstrip("]")
        prog, bar = _state["progress"], _state["bars"].get(result.stage)
        if prog is not None and bar is not None:
            prog.advance(bar)
        p = _state["pairs"].setdefault(name, {"events": 0, "cached": 0, "na": 0, "seconds": 0.0, "lead": None})
        p["events"] += 1
        p["na"] += how == "skipped"
        p["cached"] += how == "cached"
        p["seconds"] += float(result.seconds)
        if metric == "lead" and "score" in result.info:
            p["lead"] = float(result.info["score"])
        if _state["per_pair"] and p["events"] == _state["per_pair"]:
            _state["done_pairs"] += 1
            lead = "" if p["lead"] is None else f"  LEAD {p['lead']:.4g}"
            na = f", {p['na']} not applicable" if p["na"] else ""
            _emit(f"  [{_state['done_pairs']}/{_state['n_pairs']}] {name}{lead}  "
                  f"({p['events'] - p['cached'] - p['na']} computed, {p['cached']} cached{na}, {p['seconds']:.1f} s)")


def note(text: str) -> None:
    """A one-off line among the progress output (e.g. "served from the cache")."""
    with _lock:
        if _state["mode"] is not None:
            _emit(text)


def disable() -> None:
    """Stop and forget progress (the CLI calls it when a command ends)."""
    stop()
    with _lock:
        _state.update(mode=None, stream=None)
    log.setLevel(logging.WARNING)


def stop() -> None:
    """Stop the live display (idempotent); later events are counted, not drawn."""
    with _lock:
        prog = _state["progress"]
        _state["progress"] = None
        if prog is not None:
            prog.stop()
