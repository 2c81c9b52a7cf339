"""Disk-full handling: recognise ENOSPC / EDQUOT (also chained) and say how much room is left."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from zoorank.storage.arrays.errors import StoreFull, StoreNotWritable

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


def write_error(root: Path, what: str, folder: Path, exc: BaseException, needed: int | None = None) -> StoreNotWritable:
    """The error for an OSError while writing ``what`` into ``folder`` of the store at ``root``:
    :class:`StoreFull` (naming the folder, the space left and, when known, the bytes the data needs)
    on ENOSPC/EDQUOT, else :class:`StoreNotWritable`."""
    if _is_no_space(exc):
        need = f"; the data needs up to {_human_bytes(needed)} before compression" if needed else ""
        return StoreFull(
            f"cache store {root} is full: writing {what} into {folder.parent} failed "
            f"(No space left on device); {_space_left(folder.parent)} there{need}. Nothing was "
            "published (the partial entry is removed). Free space (e.g. `zoorank cache prune`) or "
            "set ZOORANK_STORE / --store to a folder with room."
        )
    return StoreNotWritable(f"cannot write {what} under {root}: {exc}")
