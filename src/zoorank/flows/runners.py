"""Task runners for the flows: threads (default) or Dask (LocalCluster or an address)."""
from __future__ import annotations


def make_task_runner(runner: str = "thread", workers: int = 2, address: str | None = None,
                     memory_limit: str | None = None):
    """``thread``: ThreadPoolTaskRunner(max_workers=workers). ``dask``: a LocalCluster of
    ``workers`` single-threaded processes (or an existing scheduler at ``address``)."""
    if runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max(1, int(workers)))
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        kwargs = {"n_workers": max(1, int(workers)), "threads_per_worker": 1, "dashboard_address": None}
        if memory_limit:
            kwargs["memory_limit"] = memory_limit
        return DaskTaskRunner(cluster_kwargs=kwargs)
    raise ValueError(f"runner must be 'thread' or 'dask', got {runner!r}")
