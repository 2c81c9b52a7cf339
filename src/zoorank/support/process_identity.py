"""Who owns a leftover (a temporary server, an MLflow run): a process identity that survives pid reuse.

A pid alone is not an identity: after its owner dies the kernel hands the number to a new
process. So an owner is recorded as ``host:boot:pid:start`` where ``boot`` is the kernel's boot id
(``/proc/sys/kernel/random/boot_id``) and ``start`` the process start time in clock ticks since
boot (field 22 of ``/proc/<pid>/stat``, see ``man 5 proc``). Such an owner is alive exactly when
a process with that pid exists *and* started at that tick on this boot of this host. Off Linux
(no ``/proc``) boot and start are empty and the check falls back to the pid alone.

Only the standard library: the server watchdog and the tracking code both use it.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

__all__ = ["ProcessIdentity", "boot_id", "process_start_ticks", "pid_exists"]


def boot_id() -> str:
    """The kernel's boot id, or ``""`` where there is none (not Linux)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), None if
    the process does not exist or /proc is missing. A zombie (dead, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after its last ")"
    fields = text[text.rfind(")") + 2:].split()
    if not fields or fields[0] in ("Z", "X"):  # fields[0] is field 3, the state
        return None
    return int(fields[19])  # field 22


def pid_exists(pid: int) -> bool:
    """True when a (non-zombie) process ``pid`` exists."""
    if os.path.isdir("/proc/self"):
        return process_start_ticks(pid) is not None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as ``host:boot:pid:start`` (see the module docstring)."""

    host: str
    boot: str
    pid: int
    start: int | None

    @classmethod
    def of(cls, pid: int | None = None) -> "ProcessIdentity":
        """The identity of ``pid`` (default: this process)."""
        pid = os.getpid() if pid is None else int(pid)
        return cls(socket.gethostname(), boot_id(), pid, process_start_ticks(pid))

    def __str__(self) -> str:
        return f"{self.host}:{self.boot}:{self.pid}:{'' if self.start is None else self.start}"

    @classmethod
    def parse(cls, text: str) -> "ProcessIdentity":
        """Inverse of ``str()``; ValueError naming the text when it is not an identity."""
        host, boot, pid, start = str(text).rsplit(":", 3)
        try:
            return cls(host, boot, int(pid), int(start) if start else None)
        except ValueError:
            raise ValueError(f"not a process identity: {text!r}") from None

    def checkable(self) -> bool:
        """Whether this machine can tell if the process lives: same host and same boot."""
        return self.host == socket.gethostname() and self.boot == boot_id()

    def alive(self) -> bool | None:
        """True / False on this host and boot; None when it cannot be checked from here."""
        if not self.checkable():
            return None
        if self.start is None:
            return pid_exists(self.pid)
        return process_start_ticks(self.pid) == self.start
