"""Incremental writes of one entry's rows into its temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoorank.storage.arrays.files import _check_array, _nbytes

if TYPE_CHECKING:  # the store imports this module
    from zoorank.storage.arrays.store import ArrayStore


class ArrayWriter:
    """Incremental writer into a temporary entry; published by :meth:`ArrayStore.writer`.

    ``append(batch)`` writes consecutive rows; ``write(start, batch)`` writes rows at an offset
    (any order). Every row must be written exactly once before the ``with`` block ends, or the
    entry is discarded and ``StoreError`` raised.
    """

    def __init__(self, store: "ArrayStore", key: str, tmp: Path, array: Any, shape: tuple[int, ...]):
        self.store, self.key, self.tmp_path, self.array = store, key, tmp, array
        self.shape = shape
        self._written = np.zeros(shape[0], dtype=bool)
        self._cursor = 0

    @property
    def rows_written(self) -> int:
        return int(self._written.sum())

    @property
    def complete(self) -> bool:
        return bool(self._written.all())

    def write(self, start: int, batch: Any) -> None:
        b = _check_array(batch)
        if b.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.key}: batch shape {b.shape} does not fit array shape {self.shape}")
        start = int(start)
        stop = start + b.shape[0]
        if start < 0 or stop > self.shape[0]:
            raise IndexError(f"{self.key}: rows {start}:{stop} outside 0:{self.shape[0]}")
        if self._written[start:stop].any():
            raise ValueError(f"{self.key}: rows {start}:{stop} overlap rows already written")
        try:
            self.array[start:stop] = b
        except OSError as e:  # ENOSPC at a chunk write: name the folder and the space left
            raise self.store._write_error(repr(self.key), self.tmp_path, e, _nbytes(self.shape, b.dtype)) from e
        self._written[start:stop] = True
        self._cursor = max(self._cursor, stop)

    def append(self, batch: Any) -> None:
        self.write(self._cursor, batch)
