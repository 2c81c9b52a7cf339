"""A writable store in front of read-only ones: use a team's shared cache without writing to it.

``LayeredStore(ArrayStore(own), [ArrayStore(team, read_only=True)])`` has the methods of
:class:`~zoorank.storage.arrays.ArrayStore` that the pipeline uses, so the stages take it as is:

* reads (``exists``, ``get``, ``checksum``, ``verify``, ``attrs``, ``open_lazy``, ``get_record``,
  ``has_record``) try the writable store first, then each read-only store in order, and answer
  from the first that holds a *verified* entry. A damaged entry in a read-only store cannot be
  repaired there: it is skipped with a warning, like a miss, and the stage recomputes it into the
  writable store;
* writes (``put``, ``writer``, ``put_record``) go to the writable store; ``put`` of a key that a
  read-only store already holds is a no-op, as it is in one store (content keys: same result);
* ``delete``, ``prune`` and ``delete_record`` touch the writable store only.

Every entry is content-keyed, so which layer serves a key never changes the result.

Configuration: ``--read-store DIR`` / ``ZOORANK_READ_STORE`` / ``read_store=`` (``Settings.read_store``,
:func:`open_store`). When the configured ``--store`` itself is an existing store that cannot be
written (a read-only mount), :func:`resolve_read_only_store` layers it the same way in front of
nothing but the user's own ``<home>/store.zarr`` and says so, instead of failing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from zoorank.storage.arrays import ArrayStore, CacheMiss, CorruptEntry, StoreError, StoreNotWritable

__all__ = ["LayeredStore", "open_store", "open_read_store", "resolve_read_only_store", "describe"]

log = logging.getLogger(__name__)


def open_read_store(root: str | os.PathLike[str]) -> ArrayStore:
    """An existing store opened read-only; StoreError naming ``root`` when it is not a zoorank store."""
    root = Path(os.path.expanduser(os.fspath(root))).absolute()
    meta = root / "zarr.json"
    try:
        node = json.loads(meta.read_text(encoding="utf-8")).get("node_type")
    except FileNotFoundError:
        raise StoreError(f"read store {root} does not exist or is not a zoorank store (no {meta})") from None
    except (OSError, ValueError, AttributeError) as e:
        raise StoreError(f"read store {root} cannot be read: {meta}: {e}") from e
    if node != "group":
        raise StoreError(f"read store {root} is not a zoorank store ({meta} describes a Zarr {node})")
    return ArrayStore(root, read_only=True)


class LayeredStore:
    """One writable :class:`ArrayStore` in front of read-only ones (see the module docstring)."""

    def __init__(self, write: ArrayStore, reads: Sequence[ArrayStore]):
        if write.read_only:
            raise ValueError(f"the front store of a LayeredStore must be writable, got {write!r}")
        self.write_store = write
        self.read_stores = list(reads)
        self.layers = [write, *self.read_stores]
        self.root = write.root
        self.read_only = False
        self.codec, self.chunk_bytes = write.codec, write.chunk_bytes

    def __repr__(self) -> str:
        return f"LayeredStore({str(self.root)!r}, reads={[str(s.root) for s in self.read_stores]})"

    # ----------------------------------------------------------------- which layer holds a key

    def _first_layer(self, key: str, read):
        """``read(layer)`` on the first layer that serves ``key``; the CacheMiss of the writable
        store (or its CorruptEntry) if none does. A corrupt entry in a read-only layer is logged and
        skipped (the stage then recomputes into the writable store)."""
        first_error: StoreError | None = None
        for layer in self.layers:
            try:
                return read(layer)
            except CacheMiss as e:
                first_error = first_error or e
            except CorruptEntry as e:
                if layer is not self.write_store:
                    log.warning("read-only store %s: %s; skipping it (recomputed into %s)", layer.root, e, self.root)
                first_error = e if layer is self.write_store or first_error is None else first_error
        assert first_error is not None
        raise first_error

    def _holder(self, key: str, *, deep: bool = True) -> ArrayStore:
        """The first layer with a valid entry for ``key``; CacheMiss (of the writable store) if none.

        A corrupt entry in the writable store raises as in one store only when no read-only layer
        can serve the key (the stage then recomputes and replaces it)."""
        return self._first_layer(key, lambda layer: (layer.verify(key, deep=deep), layer)[1])

    def _record_holder(self, key: str) -> ArrayStore:
        return self._first_layer(key, lambda layer: (layer.get_record(key), layer)[1])

    def layer_of(self, key: str) -> ArrayStore | None:
        """The layer that serves ``key`` (verified), or None."""
        try:
            return self._holder(key)
        except (CacheMiss, CorruptEntry):
            return None

    # ----------------------------------------------------------------- reads

    def path(self, key: str) -> Path:
        layer = self.layer_of(key)
        return (layer or self.write_store).path(key)

    def record_path(self, key: str) -> Path:
        with contextlib.suppress(CacheMiss, CorruptEntry):
            return self._record_holder(key).record_path(key)
        return self.write_store.record_path(key)

    def verify(self, key: str, *, deep: bool = True) -> dict[str, Any]:
        return self._holder(key, deep=deep).verify(key, deep=deep)

    def exists(self, key: str, *, deep: bool = True) -> bool:
        return any(layer.exists(key, deep=deep) for layer in self.layers)

    def get(self, key: str, **expect: Any):
        return self._first_layer(key, lambda layer: layer.get(key, **expect))

    def attrs(self, key: str) -> dict[str, Any]:
        return self._holder(key, deep=False).attrs(key)

    def checksum(self, key: str) -> str:
        return self._holder(key, deep=False).checksum(key)

    def open_lazy(self, key: str, *, verify: bool = False) -> Any:
        return self._holder(key, deep=verify).open_lazy(key, verify=verify)

    def get_record(self, key: str) -> Any:
        return self._record_holder(key).get_record(key)

    def has_record(self, key: str) -> bool:
        return any(layer.has_record(key) for layer in self.layers)

    def list(self, stage: str | None = None) -> list[str]:
        return sorted({k for layer in self.layers for k in layer.list(stage)})

    def list_records(self, stage: str | None = None) -> list[str]:
        return sorted({k for layer in self.layers for k in layer.list_records(stage)})

    def info(self) -> dict[str, Any]:
        """The writable store's counts, plus ``read_stores``: each read-only store's counts."""
        out = self.write_store.info()
        out["read_stores"] = [layer.info() for layer in self.read_stores]
        return out

    # ----------------------------------------------------------------- writes: the writable store only

    def put(self, key: str, array: Any, *, overwrite: bool = False, **kwargs: Any) -> Path:
        if not overwrite:
            for layer in self.read_stores:
                if layer.exists(key):
                    return layer.path(key)
        return self.write_store.put(key, array, overwrite=overwrite, **kwargs)

    @contextlib.contextmanager
    def writer(self, key: str, shape: Sequence[int], dtype: Any, chunks: Sequence[int] | None = None,
               **kwargs: Any) -> Iterator[Any]:
        with self.write_store.writer(key, shape, dtype, chunks, **kwargs) as w:
            yield w

    def put_record(self, key: str, value: Any) -> Path:
        return self.write_store.put_record(key, value)

    def delete(self, key: str) -> bool:
        return self.write_store.delete(key)

    def delete_record(self, key: str) -> bool:
        return self.write_store.delete_record(key)

    def prune(self, **kwargs: Any):
        return self.write_store.prune(**kwargs)

    def check_writable(self) -> None:
        self.write_store.check_writable()


def open_store(settings: Any) -> ArrayStore | LayeredStore:
    """The store of ``settings``: ``settings.store``, behind ``settings.read_store`` when one is set."""
    write = ArrayStore(settings.store)
    read = getattr(settings, "read_store", None)
    if not read:
        return write
    return LayeredStore(write, [open_read_store(read)])


def resolve_read_only_store(settings: Any) -> Any:
    """``settings``, or, when its store is an existing store that cannot be written and no read
    store is set, a copy that reads it as ``read_store`` and writes into ``<home>/store.zarr``.

    The probe is a real write (:meth:`ArrayStore.check_writable`), so a read-only mount is found
    even where root could write through permissions. A store that does not exist and cannot be
    created still fails (StoreNotWritable naming it), as does a read-only store that already is
    ``<home>/store.zarr``."""
    if getattr(settings, "read_store", None):
        return settings
    root = Path(settings.store)
    try:
        ArrayStore(root).check_writable()
        return settings
    except StoreNotWritable as err:
        if not (root / "zarr.json").is_file():
            raise
        own = Path(settings.home) / "store.zarr"
        if own.absolute() == root.absolute():
            raise StoreNotWritable(f"{err} It is read-only: pass it as --read-store DIR (ZOORANK_READ_STORE) "
                                   "and give --store a writable folder.") from err
        ArrayStore(own).check_writable()
        reason = getattr(err.__cause__, "strerror", None) or "not writable"
        log.warning("cache store %s is read-only (%s): reading cached stages from it and computing the missing "
                    "ones into %s (set --store / --read-store to choose)", root, reason, own)
        return dataclasses.replace(settings, store=own, read_store=root)


def describe(settings: Any) -> str:
    """``"<store>"`` or ``"<store> (reading also from <read store>, read-only)"``, for messages."""
    read = getattr(settings, "read_store", None)
    return f"{settings.store}" + (f" (reading also from {read}, read-only; new stages go to {settings.store})"
                                  if read else "")
