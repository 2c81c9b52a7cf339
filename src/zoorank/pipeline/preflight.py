"""Checks before any work: the zoo and dataset ids resolve, the store is writable and the
tracking URI reachable. Shared by the API and the flows' Python entry points (no Prefect)."""
from __future__ import annotations

from zoorank.config import Settings

__all__ = ["resolve_specs", "check_datasets", "check_locations", "_check_locations", "_check_store", "_check_tracking"]


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


def check_locations(settings: Settings, track: bool) -> Settings:
    """Fail fast, before any work, on an unwritable store or an unreachable tracking URI. Returns
    the settings to run with: an existing store that cannot be written (a read-only team cache)
    becomes the read store in front of ``<home>/store.zarr`` (zoorank.storage.layered, says so)."""
    settings = _check_store(settings)
    _check_tracking(settings, track)
    return settings


def _check_store(settings: Settings) -> Settings:
    """The store half of :func:`_check_locations` (no MLflow import)."""
    from zoorank.storage.layered import open_store, resolve_read_only_store

    settings = resolve_read_only_store(settings)  # creates the store, or raises StoreNotWritable naming it
    open_store(settings).check_writable()         # a real write; a missing --read-store fails naming it
    return settings


def _check_tracking(settings: Settings, track: bool) -> None:
    if track:
        from zoorank.storage.tracking import Tracker

        Tracker.from_settings(settings)  # raises TrackingUnavailable naming the URI


_check_locations = check_locations   # the name api and the flows used
