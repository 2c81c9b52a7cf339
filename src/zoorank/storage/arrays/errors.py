"""The store's exceptions: every one names the key and the path (or the folder)."""

from __future__ import annotations

from pathlib import Path


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
