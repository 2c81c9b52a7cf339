"""Ctrl-C during ``zoorank rank``: stop at once with one line.

Every stage publishes its output atomically (``zoorank.storage.arrays``), so whatever finished
stays cached and a rerun resumes there (the same property that survives ``kill -9``). The handler
therefore does not wait for running tasks (a thread cannot be interrupted, and Prefect's task
runner would join them): it stops the live progress display, marks the MLflow parent run of the
ranking KILLED, stops the temporary Prefect server this process started, prints one line and
exits with status 130 (128 + SIGINT).
"""
from __future__ import annotations

import os
import signal
import sys

_state: dict = {"run": None, "store": None}


def watch(run) -> None:
    """The MLflow parent run (a ``RankingRun``) to mark KILLED on Ctrl-C."""
    _state["run"] = run


def install(store=None, stream=None):
    """Install the SIGINT handler (main thread only; the CLI calls it); returns the previous
    handler, for :func:`restore`."""
    _state["store"] = store
    _state["stream"] = stream or sys.stderr
    return signal.signal(signal.SIGINT, _on_sigint)


def restore(previous) -> None:
    """Put back the handler :func:`install` replaced and forget the watched run."""
    _state["run"] = None
    signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def _stop_temporary_prefect_server() -> None:
    mod = sys.modules.get("prefect.server.api.server")
    if mod is None:
        return
    for server in list(getattr(mod.SubprocessASGIServer, "_instances", {}).values()):
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - best effort while exiting
            pass


def _on_sigint(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the cleanup short
    progress = sys.modules.get("zoorank.reporting.progress")  # loaded = a display may be live; no import
    if progress is not None:                                   # edge from support up to reporting
        progress.stop()
    killed = ""
    run = _state.get("run")
    if run is not None and not run.was_finished and not run._closed:
        try:
            run.finish("KILLED")
            killed = f"; MLflow run {run.run_id} marked KILLED"
        except Exception as exc:  # noqa: BLE001
            killed = f"; could not mark MLflow run {run.run_id} KILLED ({type(exc).__name__})"
    _stop_temporary_prefect_server()
    where = f" in {_state['store']}" if _state.get("store") else ""
    stream = _state.get("stream") or sys.stderr
    print(f"zoorank: interrupted; finished stages stay cached{where}, rerun to resume{killed}",
          file=stream, flush=True)
    os._exit(130)
