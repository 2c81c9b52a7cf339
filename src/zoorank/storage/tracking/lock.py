"""The tracking lock: find-or-create of runs is serialised across the threads and processes of one
machine (MLflow has no create-if-absent), by a thread lock plus an ``fcntl`` lock on a file.

The file is ``<db>.zoorank.lock`` beside a ``sqlite:///`` database and
``<tmp>/zoorank-mlflow-<sha256(uri)[:16]>.lock`` for an ``http(s)`` tracking server (one lock per
server for the processes of a machine); other URIs get the thread lock only (docs/operations.md).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

from zoorank.storage.tracking.errors import TrackingError

log = logging.getLogger("zoorank.storage.tracking")

#: how long a process waits for another one's find-or-create before giving up
LOCK_TIMEOUT_S = 120.0


def http_lock_file(uri: str) -> Path:
    """The lock file shared by this machine's processes logging to the tracking server ``uri``."""
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"zoorank-mlflow-{digest}.lock"


def sqlite_lock_file(db: Path) -> Path:
    """The lock file beside the SQLite database ``db``."""
    return db.with_name(db.name + ".zoorank.lock")


class TrackingLock:
    """Re-entrant within a thread; ``path=None``: the thread lock only. A folder where the lock
    file cannot be created (read-only) leaves only readers to serialise against: no file lock."""

    def __init__(self, path: Path | None, timeout_s: float = LOCK_TIMEOUT_S):
        self.path, self.timeout_s = path, timeout_s
        self._thread_lock = threading.RLock()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            if self.path is None:
                yield
                return
            try:
                fh_cm = open(self.path, "a+")
            except OSError as e:
                log.debug("no tracking lock file %s (%s); continuing without it", self.path, e)
                yield
                return
            with fh_cm as fh:
                deadline = time.monotonic() + self.timeout_s
                while True:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise TrackingError(f"timed out waiting for the tracking lock {self.path}") from None
                        time.sleep(0.05)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
