"""Listing, size report and pruning (old entries, stale temporaries) of a store."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Iterator


from zoorank.storage.arrays.errors import CacheMiss, CorruptEntry
from zoorank.storage.arrays.files import ATTR, DEFAULT_TMP_MAX_AGE_S, TMP_MARK, TRASH_MARK, _TMP_RE, _dir_bytes, _host_tag, _pid_alive, _rmtree, _to_seconds


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


class MaintenanceMixin:
    """Listing, :meth:`info` and :meth:`prune` of :class:`ArrayStore`."""

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
