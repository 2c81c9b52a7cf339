"""Watchdog of a temporary Prefect server: ends the server when the zoorank process that started it dies.

Run as a script (``python -I server_watchdog.py <server pid> <server start ticks>``) with its
stdin the read end of a pipe whose write end only the zoorank process holds. Any death of that
process, ``kill -9`` included, closes the write end; the read here then returns EOF and the
server is sent SIGTERM (uvicorn's graceful stop), then SIGKILL after :data:`GRACE_S`. The start
ticks guard against pid reuse: a pid that now names another process is left alone.

A pipe instead of ``prctl(PR_SET_PDEATHSIG)`` in the server: the death signal fires when the
*thread* that forked the child exits, so a ranking started from a worker thread would lose its
server while the process still uses it; and Prefect starts the server, so zoorank cannot set a
``preexec_fn`` without patching Prefect. Standard library only, nothing is imported from
zoorank: it must start in milliseconds and run after its parent is gone.
"""
from __future__ import annotations

import os
import signal
import sys
import time

GRACE_S = 5.0


def _start_ticks(pid: int) -> int | None:
    # same definition as zoorank.support.process_identity.process_start_ticks (this script imports no zoorank)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _same_process(pid: int, start: int | None) -> bool:
    if start is None:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return _start_ticks(pid) == start


def end_server(pid: int, start: int | None, grace_s: float = GRACE_S) -> bool:
    """SIGTERM, then SIGKILL after ``grace_s``, the process ``pid`` if it is still the one that
    started at ``start`` ticks. Returns whether it had to be ended."""
    if not _same_process(pid, start):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _same_process(pid, start):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def main(argv: list[str]) -> int:
    pid, start = int(argv[1]), (int(argv[2]) if len(argv) > 2 and argv[2] else None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the group is for the parent
    try:
        while sys.stdin.buffer.read(4096):  # nothing is ever written: this returns b"" at EOF
            pass
    except OSError:
        pass
    end_server(pid, start)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
