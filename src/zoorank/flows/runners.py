"""Task runners for the flows: threads (default) or Dask (LocalCluster or an address)."""
from __future__ import annotations

import os


def share_prefect_api() -> str | None:
    """Make Dask worker processes report to this process's Prefect API.

    Worker processes do not inherit the temporary Prefect server of the parent: with no
    ``PREFECT_API_URL`` each worker starts a temporary server of its own (tens of seconds each
    on a loaded 2-core machine, measured 85-100 s of fixed overhead per flow) and its task runs
    land in a database nobody looks at. So, when no API URL is configured, start the temporary
    server here (the same singleton Prefect's client would start) and export its URL; worker
    processes started afterwards inherit it. Returns the URL in use (None: nothing to share).
    """
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    configured = PREFECT_API_URL.value()
    if configured:   # a real server, or a test harness's settings context (sent along with each task)
        return configured
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    os.environ["PREFECT_API_URL"] = server.api_url
    return server.api_url


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
