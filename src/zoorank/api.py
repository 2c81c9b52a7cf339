"""Python API: ``zoorank.rank(zoo, dataset, ...)`` -> pandas DataFrame (one row per pair)."""
from __future__ import annotations

from typing import Iterable

import pandas as pd

from zoorank.config import Settings, apply_offline_defaults
from zoorank.stages import LeadParams, SubsetSpec


def resolve_specs(zoo) -> list:
    """``"default"``, a YAML path, a model id, or a list of ids / ModelSpecs -> list of specs."""
    from zoorank.zoo import list_models, load_zoo

    if isinstance(zoo, str):
        if zoo == "default" or zoo.endswith((".yaml", ".yml")):
            return list(load_zoo(zoo))
        zoo = [s.strip() for s in zoo.split(",") if s.strip()]
    specs = list(zoo)
    known = set(list_models())
    for s in specs:
        if isinstance(s, str) and s not in known:
            from zoorank.zoo import get_config
            get_config(s)  # raises a ValueError naming the closest ids
    return specs


def check_datasets(datasets: list[str]) -> None:
    """Unknown dataset ids fail here, naming the closest known ids, before any work."""
    from zoorank.data import dataset_info

    for d in datasets:
        dataset_info(d)


def _check_locations(settings: Settings, track: bool) -> None:
    """Fail fast, before any work, on an unwritable store or an unreachable tracking URI."""
    from zoorank.storage.arrays import ArrayStore

    ArrayStore(settings.store)          # creates the store or raises StoreNotWritable naming it
    if track:
        from zoorank.storage.tracking import Tracker

        Tracker.from_settings(settings)  # raises TrackingUnavailable naming the URI


def rank(zoo="default", dataset: str | Iterable[str] = "digits", *, per_class: int | None = 100,
         split: str = "train", seed: int = 0, metrics: list[str] | None = None,
         metric_params: dict | None = None, lead_params: LeadParams | None = None,
         settings: Settings | None = None, device: str = "cpu", batch_size: int = 64,
         workers: int = 2, runner: str = "thread", dask_address: str | None = None,
         data_root: str | None = None, track: bool = True, new_run: bool = False,
         return_run_id: bool = False, memory_limit: str | None = None):
    """Rank the backbones of ``zoo`` on ``dataset`` by LEAD and every baseline.

    Runs the Prefect ``rank`` flow (a temporary local Prefect server unless PREFECT_API_URL
    points at a real one); intermediates are cached in the Zarr store of ``settings`` and
    results logged to its MLflow tracking URI. Returns the ranking table.
    """
    settings = settings or Settings.from_env()
    apply_offline_defaults(settings)
    datasets = [dataset] if isinstance(dataset, str) else list(dataset)
    specs = resolve_specs(zoo)
    check_datasets(datasets)
    if metrics is not None:
        from zoorank.metrics.registry import get_metric
        for m in metrics:
            get_metric(m)
    _check_locations(settings, track)
    from zoorank.flows.rank import rank_flow
    from zoorank.flows.runners import flow_settings, make_task_runner

    with flow_settings():
        flow = rank_flow.with_options(task_runner=make_task_runner(runner, workers, dask_address, memory_limit))
        result = flow(specs, datasets, SubsetSpec(split=split, per_class=per_class, seed=seed), metrics,
                      metric_params, lead_params, settings, device, batch_size, data_root, track, new_run)
    table = pd.DataFrame(result["table"])
    return (table, result["run_id"]) if return_run_id else table
