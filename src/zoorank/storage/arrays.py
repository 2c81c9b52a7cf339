"""Zarr v3 array cache with atomic publish and verified reads.

Layout
------
The store root is a Zarr v3 group; a key ``"<stage>/<digest>"`` (see
:func:`zoorank.storage.keys.content_key`) is the array at ``<root>/<stage>/<digest>/``::

    store.zarr/
      zarr.json                                   group
      features/zarr.json                          group (one per stage)
      features/3b5e0c1f9a7d2e4b6c8a0f12/          array: zarr.json + c/<i>/<j> chunk files
      features/3b5e...12.tmp-<host>-<pid>-<uuid>/ a write in progress (or left by a killed process)
      scores/77aa...90.json                       a small JSON record (put_record)

So ``zarr.open_group(root)["features/3b5e..."]`` and ``dask.array.from_zarr`` work on it directly.
Keys are one or more ``/``-separated segments of ``[A-Za-z0-9_.=-]`` (no ``..``, no leading dot,
no ``.tmp-``/``.trash-``, no ``.json`` suffix); they cannot escape the root.

Atomic publish
--------------
A write goes to a temporary sibling ``<name>.tmp-<host>-<pid>-<uuid>``. When all data is
written, the SHA-256 of the array's C-order bytes is computed (streamed by row blocks for
incremental writers), and the attribute ``zoorank = {complete: true, key, shape, dtype, chunks,
n_chunks, checksum, ...}`` is written; then ``os.rename`` moves the folder into place. Rename of
a folder onto an existing non-empty folder fails on POSIX, so when two processes race for one
key the first rename wins; the loser verifies the winner's entry and discards its own (if the
existing entry is corrupt it is moved aside and replaced). A killed writer leaves only a
``.tmp-`` folder, which readers never look at and :meth:`ArrayStore.prune` removes.

Verified reads
--------------
:meth:`ArrayStore.get` (and :meth:`exists`, deep by default) refuse an entry unless: its metadata
parses, the completion marker is set, the stored key equals the requested key, the Zarr shape,
dtype and chunk grid equal the recorded ones, every chunk file is present (arrays are written
with ``write_empty_chunks=True`` so a missing file cannot be a legitimate all-zero chunk),
every chunk passes its CRC32C (a ``crc32c`` codec closes each chunk's codec chain, so a
truncated or altered chunk fails on any read, lazy ones included) and the SHA-256 of the data
equals the recorded checksum. Failures raise :class:`CorruptEntry` naming the key and path; the
pipeline then recomputes and :meth:`put` replaces the entry. No fsync is done on chunk files:
after a power loss a published-but-damaged entry fails verification and is recomputed.

Codec choice (measured)
-----------------------
``benchmarks/bench_codecs.py --real``: 20000 x 512 float32 penultimate features of MobileNetV2
(ImageNet weights) on Fashion-MNIST (42 % exact zeros after ReLU + average pooling), 4 MiB row
chunks, every codec followed by the per-chunk CRC32C; medians of 5 on the 2-core machine while
it was heavily loaded (load average 9, so times are +-50 %; ratios are exact)::

    codec                        write (s)  read (s)  ratio
    none                           0.23       0.08     0.98
    zstd (level 3)                 0.97       0.18     1.60
    zstd-1 (level 1)   DEFAULT     0.35       0.16     1.54
    blosc lz4 + bitshuffle         0.14       0.12     1.11
    blosc lz4, no shuffle          0.17       0.08     1.22
    blosc zstd + bitshuffle        0.27       0.17     1.21
    blosc zstd-1, no shuffle       0.52       0.22     1.55
    gzip (level 5)                 4.17       0.55     1.60

The synthetic ReLU features (the script's default data) give the same ratios within 0.03.
Default: **zstd level 1** (``DEFAULT_CODEC = "zstd-1"``): 96 % of the best ratio at a third of
zstd-3's write time; reads stay within 0.1 s of the fastest codec. Blosc with (bit)shuffle,
the usual choice for floats, is fastest but barely compresses these features: shuffling
scatters the runs of zero bytes that the ~40 % exact zeros give, and the mantissa bytes of the
rest are noise. Writing costs well under a second per 40 MB against minutes of feature
extraction, so disk wins. Chunks default to about 4 MiB of whole rows (axis 0), which matches
batch-wise feature extraction; 1-16 MiB made no consistent difference.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

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

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ATTR = "zoorank"  # reserved attribute holding our bookkeeping
DEFAULT_CODEC = "zstd-1"
DEFAULT_CHUNK_BYTES = 4 << 20
_STREAM_BLOCK_BYTES = 64 << 20
TMP_MARK = ".tmp-"
TRASH_MARK = ".trash-"
#: A temporary whose owner cannot be checked (other host) is stale after this long.
DEFAULT_TMP_MAX_AGE_S = 24 * 3600.0

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")


# --------------------------------------------------------------------------- errors


class StoreError(Exception):
    """Base class of every storage error."""


class InvalidKey(StoreError, ValueError):
    """A key that is not a valid store path."""


class CacheMiss(StoreError, LookupError):
    """No published entry for the key."""

    def __init__(self, key: str, path: Path | str):
        self.key, self.path = key, Path(path)
        super().__init__(f"cache miss: no entry {key!r} at {self.path}")


class CorruptEntry(StoreError):
    """An entry exists but must not be read (incomplete, mismatching or damaged)."""

    def __init__(self, key: str, path: Path | str, reason: str):
        self.key, self.path, self.reason = key, Path(path), reason
        super().__init__(f"corrupt cache entry {key!r} at {self.path}: {reason}")


class StoreNotWritable(StoreError, PermissionError):
    """The store root (or a folder in it) cannot be created or written."""


class StoreFull(StoreNotWritable):
    """A write ran out of space (ENOSPC, or EDQUOT: over quota); the message names the folder, the
    space left and what the entry needed. Nothing was published: the partial entry is removed."""


_NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def _is_no_space(exc: BaseException) -> bool:
    """True for ENOSPC / EDQUOT, also when wrapped (zarr's async writes may chain the OSError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n} B"


def _space_left(folder: Path) -> str:
    """``"<free> free of <total>"`` on the file system holding ``folder`` (or its nearest parent)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as e:
        return f"free space unknown ({e.strerror or e})"
    return f"{_human_bytes(usage.free)} free of {_human_bytes(usage.total)}"


# --------------------------------------------------------------------------- codecs


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


def array_sha256(a: np.ndarray) -> str:
    """``"sha256:<hex>"`` of an array's C-order bytes (the checksum recorded per entry)."""
    h = hashlib.sha256()
    _update_hash(h, a)
    return "sha256:" + h.hexdigest()


def _update_hash(h: Any, a: np.ndarray) -> None:
    a = np.ascontiguousarray(a)
    if a.size:
        h.update(memoryview(a.reshape(-1).view(np.uint8)))


# --------------------------------------------------------------------------- helpers


def _validate_key(key: str) -> list[str]:
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"store key must be a non-empty string, got {key!r}")
    segments = key.split("/")
    for seg in segments:
        if (
            not _SEGMENT_RE.match(seg)
            or ".." in seg
            or TMP_MARK in seg
            or TRASH_MARK in seg
            or seg.endswith(".json")
            or seg == "c"
        ):
            raise InvalidKey(
                f"invalid store key {key!r}: each '/'-separated segment must match "
                f"{_SEGMENT_RE.pattern}, without '..', '{TMP_MARK}', '{TRASH_MARK}', a '.json' suffix or "
                "the name 'c'"
            )
    return segments


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _tmp_name(name: str) -> str:
    return f"{name}{TMP_MARK}{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


_TMP_RE = re.compile(r"\.(?:tmp|trash)-([0-9a-f]{8})-(\d+)-[0-9a-f]+$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _count_chunk_files(path: Path) -> int:
    c = path / "c"
    if not c.is_dir():
        # 0-d arrays keep their single chunk in a file named "c"
        return 1 if c.is_file() else 0
    n = 0
    for _dirpath, _dirs, files in os.walk(c):
        n += sum(1 for f in files if not f.endswith(".partial"))
    return n


def _nbytes(shape: Sequence[int], dtype: Any) -> int:
    return int(np.dtype(dtype).itemsize * math.prod(int(s) for s in shape))


def _n_chunks(shape: Sequence[int], chunks: Sequence[int]) -> int:
    return int(math.prod(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))) if shape else 1


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _to_seconds(older_than: float | timedelta | None) -> float | None:
    if older_than is None:
        return None
    if isinstance(older_than, timedelta):
        return older_than.total_seconds()
    return float(older_than)


def _check_array(array: Any) -> np.ndarray:
    a = np.asarray(array)
    if a.dtype.hasobject or a.dtype.fields is not None or a.dtype.kind not in "biufc":
        raise TypeError(f"ArrayStore holds numeric/bool arrays only, got dtype {a.dtype}")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def _atomic_write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    tmp = path.with_name(_tmp_name(path.name))
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_dir(path.parent)


_GROUP_JSON = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}, indent=2)


# --------------------------------------------------------------------------- writer


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


# --------------------------------------------------------------------------- store


@dataclass
class PruneReport:
    removed_entries: list[str] = field(default_factory=list)
    removed_records: list[str] = field(default_factory=list)
    removed_temporaries: list[str] = field(default_factory=list)
    freed_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "removed_entries": list(self.removed_entries),
            "removed_records": list(self.removed_records),
            "removed_temporaries": list(self.removed_temporaries),
            "freed_bytes": self.freed_bytes,
        }


class ArrayStore:
    """A Zarr v3 store of immutable, content-keyed, verified arrays (see module docstring).

    Parameters
    ----------
    root : path of the store folder (created, with its group metadata, unless ``read_only``).
    read_only : never create or modify anything; ``put``/``writer``/``delete``/``prune`` raise.
    codec : default codec name (one of :data:`CODECS`).
    chunk_bytes : target chunk size for default chunks.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        read_only: bool = False,
        codec: str = DEFAULT_CODEC,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ):
        self.root = Path(os.path.expanduser(os.fspath(root))).absolute()
        self.read_only = read_only
        make_codecs(codec)  # validates the name
        self.codec = codec
        self.chunk_bytes = int(chunk_bytes)
        if not read_only:
            self._ensure_group(self.root)

    def __repr__(self) -> str:
        return f"ArrayStore({str(self.root)!r}{', read_only=True' if self.read_only else ''})"

    # ----------------------------------------------------------------- paths

    def path(self, key: str) -> Path:
        """Folder of the (published) entry for ``key``."""
        return self.root.joinpath(*_validate_key(key))

    def record_path(self, key: str) -> Path:
        segs = _validate_key(key)
        return self.root.joinpath(*segs[:-1], segs[-1] + ".json")

    def _write_error(self, what: str, folder: Path, exc: BaseException, needed: int | None = None) -> StoreNotWritable:
        """The error for an OSError while writing ``what`` into ``folder``: :class:`StoreFull` (naming the
        folder, the space left and, when known, the bytes the data needs) on ENOSPC/EDQUOT, else
        :class:`StoreNotWritable`. Call it before removing the partial entry (the space left is then
        what the write met)."""
        if _is_no_space(exc):
            need = f"; the data needs up to {_human_bytes(needed)} before compression" if needed else ""
            return StoreFull(
                f"cache store {self.root} is full: writing {what} into {folder.parent} failed "
                f"(No space left on device); {_space_left(folder.parent)} there{need}. Nothing was "
                "published (the partial entry is removed). Free space (e.g. `zoorank cache prune`) or "
                "set ZOORANK_STORE / --store to a folder with room."
            )
        return StoreNotWritable(f"cannot write {what} under {self.root}: {exc}")

    def _writable(self) -> None:
        if self.read_only:
            raise StoreNotWritable(f"store {self.root} was opened read-only")

    def check_writable(self) -> None:
        """Prove the store root takes writes (create and remove a probe file named like a
        temporary, so readers ignore it); StoreNotWritable naming the root otherwise. Catches a
        read-only mount, which the group metadata check alone does not (nothing is written when
        ``zarr.json`` already exists), also for root, whom file permissions do not stop."""
        self._writable()
        probe = self.root / _tmp_name("write-probe")
        try:
            fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise StoreNotWritable(
                f"cache store {self.root} is not writable ({e.strerror or e.__class__.__name__}). "
                "Set ZOORANK_STORE / --store to a writable folder (a read-only store can be used as "
                "--read-store)."
            ) from e

    def _ensure_group(self, folder: Path) -> None:
        """Create ``folder`` (and parents up to root) as Zarr groups; clear error if impossible."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            rel = folder.relative_to(self.root)
            cur = self.root
            for part in ("",) + rel.parts:
                cur = cur / part if part else cur
                meta = cur / "zarr.json"
                if not meta.exists():
                    _atomic_write_text(meta, _GROUP_JSON, fsync=False)
                else:
                    node = json.loads(meta.read_text()).get("node_type")
                    if node != "group":
                        raise StoreError(
                            f"{cur} is a Zarr {node}, not a group: a key cannot nest inside an entry"
                        )
        except StoreError:
            raise
        except OSError as e:
            if _is_no_space(e):
                raise self._write_error(f"the group {folder}", folder / "zarr.json", e) from e
            raise StoreNotWritable(
                f"cache store {self.root} is not writable: cannot create {folder} "
                f"({e.strerror or e.__class__.__name__}: {e.filename or folder}). "
                "Set ZOORANK_STORE / --store to a writable folder."
            ) from e

    # ----------------------------------------------------------------- verification

    def _read_meta(self, key: str, path: Path) -> dict[str, Any]:
        meta_file = path / "zarr.json"
        if not path.is_dir():
            raise CacheMiss(key, path)
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CorruptEntry(key, path, "zarr.json is missing") from None
        except (OSError, ValueError) as e:
            raise CorruptEntry(key, path, f"zarr.json is unreadable ({e})") from e
        if not isinstance(meta, dict) or meta.get("node_type") != "array":
            raise CorruptEntry(key, path, "zarr.json does not describe an array")
        return meta

    def _check_shallow(self, key: str, path: Path) -> tuple[dict[str, Any], Any]:
        """Metadata, marker, key, shape/dtype/chunks and chunk-file checks; returns (info, zarr array)."""
        import zarr

        meta = self._read_meta(key, path)
        info = (meta.get("attributes") or {}).get(ATTR)
        if not isinstance(info, dict) or info.get("complete") is not True:
            raise CorruptEntry(key, path, "no completion marker (an interrupted or foreign write)")
        if info.get("key") != key:
            raise CorruptEntry(key, path, f"entry is for key {info.get('key')!r}, not {key!r}")
        for name in ("shape", "dtype", "chunks", "n_chunks", "checksum"):
            if name not in info:
                raise CorruptEntry(key, path, f"bookkeeping attribute {name!r} is missing")
        try:
            arr = zarr.open_array(store=str(path), mode="r")
        except Exception as e:  # zarr raises many types for bad metadata
            raise CorruptEntry(key, path, f"zarr cannot open the array ({type(e).__name__}: {e})") from e
        shape, chunks = list(arr.shape), list(arr.chunks)
        if shape != list(info["shape"]):
            raise CorruptEntry(key, path, f"shape {tuple(shape)} differs from recorded {tuple(info['shape'])}")
        try:
            recorded_dtype = np.dtype(info["dtype"])
        except TypeError as e:
            raise CorruptEntry(key, path, f"recorded dtype {info['dtype']!r} is invalid") from e
        if np.dtype(arr.dtype) != recorded_dtype:
            raise CorruptEntry(key, path, f"dtype {np.dtype(arr.dtype)} differs from recorded {recorded_dtype}")
        if chunks != list(info["chunks"]):
            raise CorruptEntry(key, path, f"chunks {tuple(chunks)} differ from recorded {tuple(info['chunks'])}")
        expected = _n_chunks(shape, chunks)
        if int(info["n_chunks"]) != expected:
            raise CorruptEntry(key, path, f"recorded n_chunks {info['n_chunks']} != {expected} for this grid")
        found = _count_chunk_files(path)
        if found != expected:
            raise CorruptEntry(key, path, f"{found} chunk files present, {expected} expected")
        return info, arr

    def _read_verified(self, key: str, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        info, arr = self._check_shallow(key, path)
        try:
            data = np.asarray(arr[...])
        except Exception as e:
            raise CorruptEntry(key, path, f"chunk data unreadable ({type(e).__name__}: {e})") from e
        if array_sha256(data) != info["checksum"]:
            raise CorruptEntry(key, path, "data checksum does not match the recorded checksum")
        return data, info

    def _verify_streaming(self, key: str, path: Path) -> dict[str, Any]:
        info, arr = self._check_shallow(key, path)
        try:
            checksum = _stream_checksum(arr)
        except Exception as e:
            raise CorruptEntry(key, path, f"chunk data unreadable ({type(e).__name__}: {e})") from e
        if checksum != info["checksum"]:
            raise CorruptEntry(key, path, "data checksum does not match the recorded checksum")
        return info

    def verify(self, key: str, *, deep: bool = True) -> dict[str, Any]:
        """Check an entry; return its bookkeeping info or raise CacheMiss / CorruptEntry.

        ``deep=False`` skips reading chunk data (metadata, marker, key, shape, dtype, chunk
        files only).
        """
        path = self.path(key)
        if deep:
            return dict(self._verify_streaming(key, path))
        return dict(self._check_shallow(key, path)[0])

    # ----------------------------------------------------------------- reading

    def exists(self, key: str, *, deep: bool = True) -> bool:
        """True when a complete, valid entry exists (``deep`` also checks every byte)."""
        try:
            self.verify(key, deep=deep)
        except (CacheMiss, CorruptEntry):
            return False
        return True

    def get(
        self,
        key: str,
        *,
        expect_shape: Sequence[int] | None = None,
        expect_dtype: Any = None,
    ) -> np.ndarray:
        """Read a verified array. Raises CacheMiss or CorruptEntry (also when ``expect_*`` differ)."""
        path = self.path(key)
        data, _ = self._read_verified(key, path)
        if expect_shape is not None and tuple(data.shape) != tuple(int(s) for s in expect_shape):
            raise CorruptEntry(key, path, f"shape {data.shape} is not the expected {tuple(expect_shape)}")
        if expect_dtype is not None and data.dtype != np.dtype(expect_dtype):
            raise CorruptEntry(key, path, f"dtype {data.dtype} is not the expected {np.dtype(expect_dtype)}")
        return data

    def attrs(self, key: str) -> dict[str, Any]:
        """User attributes of an entry (shallow-verified)."""
        path = self.path(key)
        self._check_shallow(key, path)
        attrs = dict((self._read_meta(key, path).get("attributes") or {}))
        attrs.pop(ATTR, None)
        return attrs

    def checksum(self, key: str) -> str:
        """Recorded ``sha256:<hex>`` of an entry (shallow-verified): an upstream identity for keys."""
        return str(self.verify(key, deep=False)["checksum"])

    def open_lazy(self, key: str, *, verify: bool = False) -> Any:
        """Read-only ``zarr.Array`` for lazy/dask use (``dask.array.from_zarr(store.open_lazy(k))``).

        Always shallow-verified; every chunk read is CRC32C-checked by the codec chain, so a
        damaged chunk raises on access. ``verify=True`` checks the full checksum first.
        """
        import zarr

        path = self.path(key)
        if verify:
            self._verify_streaming(key, path)
        else:
            self._check_shallow(key, path)
        return zarr.open_array(store=str(path), mode="r")

    # ----------------------------------------------------------------- writing

    def _new_array(self, tmp: Path, shape: tuple[int, ...], dtype: np.dtype, chunks: tuple[int, ...] | None,
                   attrs: Mapping[str, Any] | None, codec: str | None) -> Any:
        import zarr

        chunks = tuple(int(c) for c in chunks) if chunks is not None else default_chunks(shape, dtype, self.chunk_bytes)
        if len(chunks) != len(shape) or any(c < 1 for c in chunks):
            raise ValueError(f"chunks {chunks} do not fit shape {shape}")
        user = dict(attrs or {})
        if ATTR in user:
            raise ValueError(f"attribute name {ATTR!r} is reserved")
        json.dumps(user)  # attributes must be JSON-serialisable; fail before writing data
        return zarr.create_array(
            store=str(tmp),
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            compressors=_codec_chain(codec or self.codec),
            fill_value=0,
            attributes=user,
            config={"write_empty_chunks": True},
            zarr_format=3,
        )

    def _prepare(self, key: str) -> tuple[Path, Path]:
        self._writable()
        final = self.path(key)
        self._ensure_group(final.parent)
        tmp = final.with_name(_tmp_name(final.name))
        return final, tmp

    def _seal(self, key: str, arr: Any, checksum: str) -> None:
        shape = tuple(int(s) for s in arr.shape)
        chunks = tuple(int(c) for c in arr.chunks)
        arr.update_attributes(
            {
                ATTR: {
                    "format": FORMAT_VERSION,
                    "complete": True,
                    "key": key,
                    "shape": list(shape),
                    "dtype": np.dtype(arr.dtype).str,
                    "chunks": list(chunks),
                    "n_chunks": _n_chunks(shape, chunks),
                    "checksum": checksum,
                    "codec": [c.to_dict() for c in arr.compressors],
                    "created": _now_iso(),
                    "created_unix": time.time(),
                    "writer": {"host": socket.gethostname(), "pid": os.getpid()},
                }
            }
        )

    def _publish(self, key: str, tmp: Path, final: Path, *, overwrite: bool) -> Path:
        """Rename ``tmp`` into ``final``; on a lost race keep a valid winner and drop ours."""
        if overwrite and final.exists():
            self._move_aside(final)
        for _attempt in range(5):
            try:
                os.rename(tmp, final)
                _fsync_dir(final.parent)
                return final
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                    err = self._write_error(f"{key!r} (publishing)", final, e)
                    _rmtree(tmp)
                    raise err from e
            try:
                self._verify_streaming(key, final)
            except CacheMiss:
                continue  # vanished between rename and check: try again
            except CorruptEntry as bad:
                log.warning("replacing %s", bad)
                self._move_aside(final)
                continue
            log.debug("entry %s was published by another writer; discarding ours", key)
            _rmtree(tmp)
            return final
        _rmtree(tmp)
        raise StoreError(f"could not publish {key!r} at {final}: it keeps changing under us")

    def _move_aside(self, final: Path) -> None:
        trash = final.with_name(final.name + f"{TRASH_MARK}{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        try:
            os.rename(final, trash)
        except FileNotFoundError:
            return
        _rmtree(trash)

    def put(
        self,
        key: str,
        array: Any,
        *,
        attrs: Mapping[str, Any] | None = None,
        chunks: Sequence[int] | None = None,
        codec: str | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Publish ``array`` under ``key`` atomically; return the entry's folder.

        If a valid entry already exists it is kept (content keys make it the same result) unless
        ``overwrite``; a corrupt one is replaced.
        """
        a = _check_array(array)
        final, tmp = self._prepare(key)
        if not overwrite and self.exists(key):
            return final
        try:
            ch = tuple(chunks) if chunks is not None else None
            arr = self._new_array(tmp, tuple(a.shape), a.dtype, ch, attrs, codec)
            arr[...] = a
            self._seal(key, arr, array_sha256(a))
        except BaseException as e:
            err = self._write_error(repr(key), tmp, e, a.nbytes) if isinstance(e, OSError) or _is_no_space(e) else None
            _rmtree(tmp)
            if err is not None:
                raise err from e
            raise
        return self._publish(key, tmp, final, overwrite=overwrite)

    @contextlib.contextmanager
    def writer(
        self,
        key: str,
        shape: Sequence[int],
        dtype: Any,
        chunks: Sequence[int] | None = None,
        *,
        attrs: Mapping[str, Any] | None = None,
        codec: str | None = None,
        overwrite: bool = False,
    ) -> Iterator[ArrayWriter]:
        """Context manager for incremental writes; publishes on a clean exit only.

        >>> with store.writer(key, (n, d), "float32") as w:   # doctest: +SKIP
        ...     for batch in batches:
        ...         w.append(batch)

        An exception inside the block (or rows left unwritten) deletes the temporary entry and
        nothing becomes visible. If another process publishes the key first, its entry is kept.
        """
        shape_t = tuple(int(s) for s in shape)
        if not shape_t:
            raise ValueError("writer() needs at least one dimension; use put() for scalars")
        dt = np.dtype(dtype)
        _check_array(np.zeros(0, dtype=dt))
        final, tmp = self._prepare(key)
        try:
            arr = self._new_array(tmp, shape_t, dt, tuple(chunks) if chunks is not None else None, attrs, codec)
        except OSError as e:
            err = self._write_error(repr(key), tmp, e)
            _rmtree(tmp)
            raise err from e
        except BaseException:
            _rmtree(tmp)
            raise
        w = ArrayWriter(self, key, tmp, arr, shape_t)
        try:
            yield w
            if not w.complete:
                missing = int((~w._written).sum())
                raise StoreError(f"writer for {key!r} closed with {missing} of {shape_t[0]} rows unwritten")
            try:
                self._seal(key, arr, _stream_checksum(arr))
            except OSError as e:
                raise self._write_error(repr(key), tmp, e, _nbytes(shape_t, dt)) from e
        except BaseException:
            _rmtree(tmp)
            raise
        self._publish(key, tmp, final, overwrite=overwrite)

    def delete(self, key: str) -> bool:
        """Remove an entry (atomically hidden first). Returns whether one existed."""
        self._writable()
        path = self.path(key)
        if not path.exists():
            return False
        self._move_aside(path)
        return True

    # ----------------------------------------------------------------- JSON records

    def put_record(self, key: str, value: Any) -> Path:
        """Store a small JSON value atomically (temp file, fsync, ``os.replace``)."""
        self._writable()
        path = self.record_path(key)
        self._ensure_group(path.parent)
        body = json.dumps(value, sort_keys=True, allow_nan=True)
        doc = {
            "zoorank_record": FORMAT_VERSION,
            "key": key,
            "sha256": hashlib.sha256(body.encode()).hexdigest(),
            "created": _now_iso(),
            "value": json.loads(body),
        }
        try:
            _atomic_write_text(path, json.dumps(doc, sort_keys=True, allow_nan=True))
        except OSError as e:
            if _is_no_space(e):
                raise self._write_error(f"record {key!r}", path, e, len(body)) from e
            raise StoreNotWritable(f"cannot write record {key!r} at {path}: {e}") from e
        return path

    def get_record(self, key: str) -> Any:
        """Read a JSON record; CacheMiss if absent, CorruptEntry if damaged or for another key."""
        path = self.record_path(key)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CacheMiss(key, path) from None
        except (OSError, ValueError) as e:
            raise CorruptEntry(key, path, f"record unreadable ({e})") from e
        if not isinstance(doc, dict) or doc.get("key") != key or "value" not in doc:
            raise CorruptEntry(key, path, "record has no value or belongs to another key")
        body = json.dumps(doc["value"], sort_keys=True, allow_nan=True)
        if hashlib.sha256(body.encode()).hexdigest() != doc.get("sha256"):
            raise CorruptEntry(key, path, "record checksum does not match its value")
        return doc["value"]

    def has_record(self, key: str) -> bool:
        try:
            self.get_record(key)
        except (CacheMiss, CorruptEntry):
            return False
        return True

    def delete_record(self, key: str) -> bool:
        self._writable()
        try:
            self.record_path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    # ----------------------------------------------------------------- listing, info, prune

    def _walk(self) -> Iterator[tuple[str, str, Path]]:
        """Yield (kind, key, path) for kind in {'array', 'record', 'tmp', 'other'}."""
        if not self.root.is_dir():
            return
        stack: list[tuple[Path, tuple[str, ...]]] = [(self.root, ())]
        while stack:
            folder, prefix = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for ent in entries:
                name = ent.name
                rel = "/".join(prefix + (name,))
                if TMP_MARK in name or TRASH_MARK in name:
                    yield "tmp", rel, Path(ent.path)
                    continue
                if ent.is_dir(follow_symlinks=False):
                    meta = Path(ent.path) / "zarr.json"
                    try:
                        node = json.loads(meta.read_text()).get("node_type")
                    except (OSError, ValueError, AttributeError):
                        node = None
                    if node == "array":
                        yield "array", rel, Path(ent.path)
                    elif node == "group":
                        stack.append((Path(ent.path), prefix + (name,)))
                    else:
                        yield "other", rel, Path(ent.path)
                elif name.endswith(".json") and name != "zarr.json":
                    yield "record", rel[: -len(".json")], Path(ent.path)

    def list(self, stage: str | None = None) -> list[str]:
        """Keys of published array entries (not verified; temporaries excluded), sorted."""
        keys = [k for kind, k, _ in self._walk() if kind == "array"]
        if stage is not None:
            keys = [k for k in keys if k.split("/", 1)[0] == stage]
        return sorted(keys)

    def list_records(self, stage: str | None = None) -> list[str]:
        keys = [k for kind, k, _ in self._walk() if kind == "record"]
        if stage is not None:
            keys = [k for k in keys if k.split("/", 1)[0] == stage]
        return sorted(keys)

    def info(self) -> dict[str, Any]:
        """Counts and on-disk bytes: entries, records, temporaries, per stage."""
        out: dict[str, Any] = {
            "root": str(self.root),
            "entries": 0,
            "bytes": 0,
            "records": 0,
            "record_bytes": 0,
            "temporaries": 0,
            "temporary_bytes": 0,
            "stages": {},
        }
        for kind, key, path in self._walk():
            size = _dir_bytes(path) if path.is_dir() else (path.stat().st_size if path.exists() else 0)
            if kind == "array":
                out["entries"] += 1
                out["bytes"] += size
                st = out["stages"].setdefault(key.split("/", 1)[0], {"entries": 0, "bytes": 0})
                st["entries"] += 1
                st["bytes"] += size
            elif kind == "record":
                out["records"] += 1
                out["record_bytes"] += size
            elif kind == "tmp":
                out["temporaries"] += 1
                out["temporary_bytes"] += size
        return out

    def _entry_age_s(self, path: Path, now: float) -> float:
        created = None
        try:
            if path.is_dir():
                meta = json.loads((path / "zarr.json").read_text())
                created = ((meta.get("attributes") or {}).get(ATTR) or {}).get("created_unix")
        except (OSError, ValueError, AttributeError):
            created = None
        if created is None:
            try:
                created = path.stat().st_mtime
            except OSError:
                return 0.0
        return now - float(created)

    def _tmp_is_stale(self, path: Path, now: float, tmp_max_age_s: float) -> bool:
        m = _TMP_RE.search(path.name)
        if m and m.group(1) == _host_tag():
            pid = int(m.group(2))
            if pid == os.getpid():
                return False
            return not _pid_alive(pid)
        try:
            age = now - path.stat().st_mtime
        except OSError:
            return False
        return age > tmp_max_age_s

    def prune(
        self,
        *,
        keep: Iterable[str] | None = None,
        older_than: float | timedelta | None = None,
        stage: str | None = None,
        invalid: bool = False,
        tmp_max_age_s: float = DEFAULT_TMP_MAX_AGE_S,
        dry_run: bool = False,
    ) -> PruneReport:
        """Remove cached entries and stale temporaries; return what was (or would be) removed.

        * Stale temporaries are always removed: those of a dead process on this host, or older
          than ``tmp_max_age_s`` when the owner cannot be checked. Live writers are left alone.
        * With ``keep``: entries and records whose key is not in ``keep`` are removed.
        * With ``older_than`` (seconds or timedelta): entries/records older than that are removed.
          With both, an entry must fail both to go (not kept AND old).
        * ``invalid=True`` also removes entries that fail the shallow check.
        * ``stage`` restricts entry/record removal to one stage. No selector: only temporaries
          (and invalid entries if asked) are removed.
        """
        self._writable()
        keep_set = set(keep) if keep is not None else None
        max_age = _to_seconds(older_than)
        now = time.time()
        report = PruneReport()

        def selected(key: str, path: Path) -> bool:
            if stage is not None and key.split("/", 1)[0] != stage:
                return False
            if keep_set is None and max_age is None:
                return False
            drop = True
            if keep_set is not None:
                drop = drop and key not in keep_set
            if max_age is not None:
                drop = drop and self._entry_age_s(path, now) > max_age
            return drop

        for kind, key, path in list(self._walk()):
            if kind == "tmp":
                if self._tmp_is_stale(path, now, tmp_max_age_s):
                    report.removed_temporaries.append(key)
                    report.freed_bytes += _dir_bytes(path) if path.is_dir() else path.stat().st_size
                    if not dry_run:
                        if path.is_dir():
                            _rmtree(path)
                        else:
                            with contextlib.suppress(OSError):
                                path.unlink()
            elif kind == "array":
                drop = selected(key, path)
                if not drop and invalid and (stage is None or key.split("/", 1)[0] == stage):
                    try:
                        self._check_shallow(key, path)
                    except (CacheMiss, CorruptEntry):
                        drop = True
                if drop:
                    report.removed_entries.append(key)
                    report.freed_bytes += _dir_bytes(path)
                    if not dry_run:
                        self._move_aside(path)
            elif kind == "record" and selected(key, path):
                report.removed_records.append(key)
                report.freed_bytes += path.stat().st_size
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        return report


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

