"""zoorank's temporary Prefect server: started without background services, and never outliving
the zoorank process that started it (docs/operations.md).

Prefect's ``SubprocessASGIServer`` stops its server in an ``atexit`` hook, which a ``kill -9``
skips; so each server gets a watchdog that ends it when this process dies
(:mod:`zoorank.orchestration.server_watchdog`), and a record that the next start reads to end a server
whose watchdog died too (:func:`end_orphaned_servers`).
"""
from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: Background services of the temporary server. They keep task-run, event and schedule history
#: for a UI and for automations, neither of which outlives the process that started the server,
#: and they write to its SQLite database concurrently with the API: measured here, "database is
#: locked" stalls of 2-60 s in single flows. Set only for the temporary server's own process.
TEMPORARY_SERVER_ENV = {f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in (
    "TASK_RUN_RECORDER", "EVENT_PERSISTER", "TRIGGERS", "SCHEDULER", "LATE_RUNS", "FOREMAN",
    "CANCELLATION_CLEANUP", "PAUSE_EXPIRATIONS", "REPOSSESSOR", "CLEANUP_RECONCILER")}


def start_temporary_server() -> str:
    """Start Prefect's temporary server (the singleton its client would start on first use),
    with :data:`TEMPORARY_SERVER_ENV` in its environment only, and export its URL so that
    this process and worker processes started afterwards use it. Returns the API URL.

    The server does not outlive this process: a watchdog ends it when this process dies, even
    by ``kill -9`` (:func:`guard_server`), and a server that a dead zoorank process left behind
    anyway (watchdog killed too) is ended here first (:func:`end_orphaned_servers`)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    registry = _server_registry()
    end_orphaned_servers(registry)
    server = SubprocessASGIServer()
    already_running = server.running
    saved = {k: os.environ.get(k) for k in TEMPORARY_SERVER_ENV}
    os.environ.update({k: saved[k] or v for k, v in TEMPORARY_SERVER_ENV.items()})  # user values win
    try:
        server.start(timeout=PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if not already_running and server.server_process is not None:
        guard_server(server.server_process.pid, registry, server.api_url)
    os.environ["PREFECT_API_URL"] = server.api_url
    return server.api_url


# ------------------------------------------------------------------ temporary server lifecycle

#: Watchdogs of the servers this process started (kept so their pipes stay open until exit).
_GUARDS: list = []
_REGISTRY_DIR = "zoorank-temporary-servers"


def _server_registry() -> Path:
    """``<PREFECT_HOME>/zoorank-temporary-servers``: one JSON file per temporary server started."""
    home = os.environ.get("PREFECT_HOME")
    if not home:
        from prefect.settings import get_current_settings

        home = str(get_current_settings().home)
    return Path(home).expanduser() / _REGISTRY_DIR


def guard_server(server_pid: int, registry: Path | None = None, url: str = "") -> None:
    """Tie the temporary server ``server_pid`` to this process's life.

    1. A watchdog (:mod:`zoorank.orchestration.server_watchdog`) reads a pipe that only this process can
       write; this process's death closes it and the watchdog ends the server within seconds.
    2. A record ``<registry>/<server pid>.json`` names the server and its owner (process
       identities, :mod:`zoorank.support.process_identity`), for :func:`end_orphaned_servers`; removed
       at a normal exit.
    """
    from zoorank.orchestration import server_watchdog
    from zoorank.support.process_identity import ProcessIdentity

    server = ProcessIdentity.of(server_pid)
    read_end, write_end = os.pipe()  # both non-inheritable; the child gets read_end as its stdin
    try:
        watchdog = subprocess.Popen(
            [sys.executable, "-I", server_watchdog.__file__, str(server.pid),
             "" if server.start is None else str(server.start)],
            stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    finally:
        os.close(read_end)
    _GUARDS.append((watchdog, write_end))
    if registry is None:
        return
    record = registry / f"{server.pid}.json"
    try:
        registry.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"server": str(server), "owner": str(ProcessIdentity.of()),
                                      "watchdog": str(ProcessIdentity.of(watchdog.pid)), "url": url}))
    except OSError as exc:  # the watchdog still guards; only the backstop is missing
        log.warning("cannot record the temporary Prefect server in %s: %s", registry, exc)
        return
    atexit.register(_forget, record)


def _forget(record: Path) -> None:
    with contextlib.suppress(OSError):
        record.unlink()


def end_orphaned_servers(registry: Path) -> list[int]:
    """End temporary servers recorded in ``registry`` whose zoorank owner is dead; return their pids.

    A record whose server is gone (or whose pid now names another process) is just removed; a
    live owner's server, or one on another host or boot, is left alone."""
    from zoorank.orchestration.server_watchdog import end_server
    from zoorank.support.process_identity import ProcessIdentity

    ended = []
    if not registry.is_dir():
        return ended
    for record in sorted(registry.glob("*.json")):
        try:
            doc = json.loads(record.read_text())
            server, owner = ProcessIdentity.parse(doc["server"]), ProcessIdentity.parse(doc["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable temporary-server record %s", record)
            continue
        if not server.checkable() or owner.alive():
            continue
        if server.alive() and end_server(server.pid, server.start):
            log.warning("ended temporary Prefect server pid %d (%s) left running by dead zoorank process %d",
                        server.pid, doc.get("url", "?"), owner.pid)
            ended.append(server.pid)
        _forget(record)
    return ended
