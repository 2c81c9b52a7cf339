"""Task runners for the flows: threads (default) or Dask (LocalCluster or an address)."""
from __future__ import annotations

import contextlib
import os


#: Background services of the temporary server. They keep task-run, event and schedule history
#: for a UI and for automations, neither of which outlives the process that started the server,
#: and they write to its SQLite database concurrently with the API: measured here, "database is
#: locked" stalls of 2-60 s in single flows. Set only for the temporary server's own process.
TEMPORARY_SERVER_ENV = {f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in (
    "TASK_RUN_RECORDER", "EVENT_PERSISTER", "TRIGGERS", "SCHEDULER", "LATE_RUNS", "FOREMAN",
    "CANCELLATION_CLEANUP", "PAUSE_EXPIRATIONS", "REPOSSESSOR", "CLEANUP_RECONCILER")}


def _configured_api_url() -> str | None:
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None  # a real server, or a test harness's settings context


def start_temporary_server() -> str:
    """Start Prefect's temporary server (the singleton its client would start on first use),
    with :data:`TEMPORARY_SERVER_ENV` in its environment only, and export its URL so that
    this process and worker processes started afterwards use it. Returns the API URL."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    server = SubprocessASGIServer()
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
    os.environ["PREFECT_API_URL"] = server.api_url
    return server.api_url


def share_prefect_api() -> str | None:
    """The Prefect API the flows (and Dask worker processes) report to.

    Worker processes do not inherit the temporary Prefect server of the parent: with no
    ``PREFECT_API_URL`` each worker starts a temporary server of its own (tens of seconds each
    on a loaded 2-core machine, measured 85-100 s of fixed overhead per flow) and its task runs
    land in a database nobody looks at. So, when no API URL is configured, the temporary
    server is started here (:func:`start_temporary_server`).
    """
    return _configured_api_url() or start_temporary_server()


@contextlib.contextmanager
def flow_settings():
    """Settings around one flow call: with zoorank's own temporary server, no flow-run
    heartbeats. They serve crash detection by a server that here dies with the process, and
    Prefect joins the heartbeat thread at flow exit, which sleeps in 1 s steps: about 1 s
    added to every flow (measured 1.1 s vs 0.19 s for an empty flow)."""
    configured = _configured_api_url()
    url = configured or start_temporary_server()
    from prefect.server.api.server import SubprocessASGIServer

    ours = SubprocessASGIServer._instances.get(None)
    temporary = configured is None or (ours is not None and ours.server_process is not None
                                       and url == ours.api_url)
    if not temporary:
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def make_task_runner(runner: str = "thread", workers: int = 2, address: str | None = None,
                     memory_limit: str | None = None):
    """``thread``: ThreadPoolTaskRunner(max_workers=workers). ``dask``: a LocalCluster of
    ``workers`` single-threaded processes (or an existing scheduler at ``address``)."""
    if runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max(1, int(workers)))
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        share_prefect_api()
        if address:
            return DaskTaskRunner(address=address)
        kwargs = {"n_workers": max(1, int(workers)), "threads_per_worker": 1, "dashboard_address": None}
        if memory_limit:
            kwargs["memory_limit"] = memory_limit
        return DaskTaskRunner(cluster_kwargs=kwargs)
    raise ValueError(f"runner must be 'thread' or 'dask', got {runner!r}")
