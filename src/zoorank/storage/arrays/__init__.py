"""Zarr v3 array cache with atomic publish and verified reads.

A key ``"<stage>/<digest>"`` (:func:`zoorank.storage.keys.content_key`) is the array at
``<root>/<stage>/<digest>/``; small JSON records sit beside the arrays as ``<digest>.json``. The
layout, the atomic publish, the verified reads, pruning and the measured codec choice are
described in docs/caching.md. One job per module:

* :mod:`.store` -- :class:`ArrayStore` (paths, writability, reads), assembled from
* :mod:`.publish` -- atomic publish (temporary sibling, seal with the checksum, rename),
* :mod:`.verification` -- what an entry must pass before it is read,
* :mod:`.records` -- JSON records,
* :mod:`.maintenance` -- listing, size report, prune,
* :mod:`.writer` -- incremental row writes (:class:`ArrayWriter`),
* :mod:`.codecs`, :mod:`.checksums`, :mod:`.files` (on-disk names and file primitives),
  :mod:`.disk_full` (ENOSPC / EDQUOT), :mod:`.errors`.

Everything public is importable from here, as before the split:
``from zoorank.storage.arrays import ArrayStore, CacheMiss, CorruptEntry, StoreFull``.
"""

from __future__ import annotations

from zoorank.storage.arrays.checksums import _stream_checksum, _update_hash, array_sha256
from zoorank.storage.arrays.codecs import (
    CODECS,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_CODEC,
    _codec_chain,
    default_chunks,
    make_codecs,
)
from zoorank.storage.arrays.errors import (
    CacheMiss,
    CorruptEntry,
    InvalidKey,
    StoreError,
    StoreFull,
    StoreNotWritable,
)
from zoorank.storage.arrays.files import (
    ATTR,
    DEFAULT_TMP_MAX_AGE_S,
    FORMAT_VERSION,
    TMP_MARK,
    TRASH_MARK,
    _dir_bytes,
)
from zoorank.storage.arrays.maintenance import PruneReport
from zoorank.storage.arrays.store import ArrayStore
from zoorank.storage.arrays.writer import ArrayWriter

__all__ = [
    "ArrayStore",
    "ArrayWriter",
    "PruneReport",
    "StoreError",
    "CacheMiss",
    "CorruptEntry",
    "StoreNotWritable",
    "StoreFull",
    "InvalidKey",
    "CODECS",
    "DEFAULT_CODEC",
    "DEFAULT_CHUNK_BYTES",
    "make_codecs",
    "default_chunks",
    "array_sha256",
]
# kept importable for benchmarks/bench_codecs.py and tests (not part of __all__)
_PRIVATE_REEXPORTS = (_codec_chain, _dir_bytes, _stream_checksum, _update_hash, ATTR, DEFAULT_TMP_MAX_AGE_S,
                      FORMAT_VERSION, TMP_MARK, TRASH_MARK)
