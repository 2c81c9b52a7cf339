"""File-system primitives of the store: key validation, temporary names, fsync, atomic text writes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zoorank.storage.arrays.errors import InvalidKey


log = logging.getLogger("zoorank.storage.arrays")

FORMAT_VERSION = 1
ATTR = "zoorank"  # reserved attribute holding our bookkeeping
TMP_MARK = ".tmp-"
TRASH_MARK = ".trash-"
#: A temporary whose owner cannot be checked (other host) is stale after this long.
DEFAULT_TMP_MAX_AGE_S = 24 * 3600.0

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")


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
