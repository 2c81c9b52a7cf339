"""Codec chains and chunk shapes of stored arrays (the codec choice is measured in docs/caching.md)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


DEFAULT_CODEC = "zstd-1"
DEFAULT_CHUNK_BYTES = 4 << 20


def make_codecs(name: str) -> list[Any]:
    """Bytes-to-bytes codec chain for a codec name (without the CRC32C, which is always added)."""
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    table = {
        "none": lambda: [],
        "zstd": lambda: [ZstdCodec(level=3)],
        "zstd-1": lambda: [ZstdCodec(level=1)],
        "blosc-lz4": lambda: [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")],
        "blosc-lz4-noshuffle": lambda: [BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")],
        "blosc-zstd": lambda: [BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")],
        "blosc-zstd-noshuffle": lambda: [BloscCodec(cname="zstd", clevel=1, shuffle="noshuffle")],
        "gzip": lambda: [GzipCodec(level=5)],
    }
    if name not in table:
        raise ValueError(f"unknown codec {name!r}; choose one of {list(CODECS)}")
    return table[name]()


#: Codec names accepted by ``ArrayStore(codec=...)`` / ``put(codec=...)`` (all offline-safe).
CODECS = (
    "none", "zstd", "zstd-1", "blosc-lz4", "blosc-lz4-noshuffle", "blosc-zstd",
    "blosc-zstd-noshuffle", "gzip",
)


def _codec_chain(name: str) -> list[Any]:
    from zarr.codecs import Crc32cCodec

    return [*make_codecs(name), Crc32cCodec()]


def default_chunks(shape: Sequence[int], dtype: Any, target_bytes: int = DEFAULT_CHUNK_BYTES) -> tuple[int, ...]:
    """Chunks of whole rows along axis 0, about ``target_bytes`` each."""
    shape = tuple(int(s) for s in shape)
    if not shape:
        return ()
    row_bytes = np.dtype(dtype).itemsize * int(np.prod(shape[1:], dtype=np.int64))
    rows = max(1, target_bytes // max(1, row_bytes))
    return (int(min(rows, max(1, shape[0]))),) + tuple(max(1, s) for s in shape[1:])
