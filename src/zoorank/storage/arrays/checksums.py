"""SHA-256 of an array's C-order bytes: in memory, or streamed from a Zarr array in row blocks."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


_STREAM_BLOCK_BYTES = 64 << 20

def array_sha256(a: np.ndarray) -> str:
    """``"sha256:<hex>"`` of an array's C-order bytes (the checksum recorded per entry)."""
    h = hashlib.sha256()
    _update_hash(h, a)
    return "sha256:" + h.hexdigest()


def _update_hash(h: Any, a: np.ndarray) -> None:
    a = np.ascontiguousarray(a)
    if a.size:
        h.update(memoryview(a.reshape(-1).view(np.uint8)))


def _stream_checksum(arr: Any) -> str:
    """SHA-256 of a zarr array's C-order bytes, read in blocks of whole rows (bounded memory)."""
    h = hashlib.sha256()
    shape = tuple(arr.shape)
    if not shape:
        _update_hash(h, np.asarray(arr[...]))
        return "sha256:" + h.hexdigest()
    row_bytes = np.dtype(arr.dtype).itemsize * int(np.prod(shape[1:], dtype=np.int64))
    chunk_rows = int(arr.chunks[0])
    rows = max(chunk_rows, (_STREAM_BLOCK_BYTES // max(1, row_bytes)) // chunk_rows * chunk_rows)
    for start in range(0, shape[0], rows):
        _update_hash(h, np.asarray(arr[start : start + rows]))
    return "sha256:" + h.hexdigest()
