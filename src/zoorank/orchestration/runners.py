"""Task runners for the flows: threads (default) or Dask (LocalCluster or an address), and the
Prefect API they report to (a configured server, or zoorank's temporary one: ``temporary_server``)."""
from __future__ import annotations

import contextlib
import os

from zoorank.orchestration.temporary_server import TEMPORARY_SERVER_ENV, start_temporary_server  # noqa: F401


def _configured_api_url() -> str | None:
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None  # a real server, or a test harness's settings context


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
