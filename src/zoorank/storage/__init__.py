"""Storage layer: content keys, the Zarr array cache and MLflow tracking.

``zoorank.storage.keys`` and ``zoorank.storage.arrays`` import only numpy (zarr lazily);
``zoorank.storage.tracking`` imports mlflow lazily too, so importing this package is cheap.
"""

from zoorank.storage.arrays import (
    ArrayStore,
    ArrayWriter,
    CacheMiss,
    CorruptEntry,
    InvalidKey,
    StoreError,
    StoreNotWritable,
)
from zoorank.storage.keys import STAGE_VERSIONS, canonical_json, content_digest, content_key, split_key

__all__ = [
    "ArrayStore",
    "ArrayWriter",
    "CacheMiss",
    "CorruptEntry",
    "InvalidKey",
    "StoreError",
    "StoreNotWritable",
    "STAGE_VERSIONS",
    "canonical_json",
    "content_digest",
    "content_key",
    "split_key",
    "Tracker",
    "TrackingError",
    "TrackingUnavailable",
]


def __getattr__(name: str):  # lazy: keep mlflow out of processes that only touch arrays
    if name in {"Tracker", "TrackingError", "TrackingUnavailable", "RankingRun"}:
        from zoorank.storage import tracking

        return getattr(tracking, name)
    raise AttributeError(f"module 'zoorank.storage' has no attribute {name!r}")
