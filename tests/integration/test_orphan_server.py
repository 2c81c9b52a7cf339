"""The temporary Prefect server of a killed zoorank process does not survive it as an orphan.

Real processes, real SIGKILL: a child process starts zoorank's temporary server
(``zoorank.orchestration.temporary_server.start_temporary_server``, what ``zoorank rank`` does without
PREFECT_API_URL) and is killed with SIGKILL. Its watchdog ends the server within seconds; when
the watchdog is killed too, the next start (the next run) finds the record and ends the server."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoorank.support.process_identity import ProcessIdentity, pid_exists

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OWNER = """
import json, sys, time
from zoorank.config import apply_offline_defaults
apply_offline_defaults()
from prefect.server.api.server import SubprocessASGIServer
from zoorank.orchestration.temporary_server import start_temporary_server
url = start_temporary_server()
print(json.dumps({"url": url, "server": SubprocessASGIServer._instances[None].server_process.pid}), flush=True)
time.sleep(600)
"""


def _start_owner(prefect_home: Path) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-c", OWNER], env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, f"the owner process exited ({proc.wait()}) before starting its server"
    return proc, int(json.loads(line)["server"])


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_exists(pid):
            return True
        time.sleep(0.1)
    return not pid_exists(pid)


def _kill(*pids: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_server_dies_with_its_killed_owner(tmp_path):
    owner, server = _start_owner(tmp_path / "prefect")
    try:
        assert pid_exists(server)
        owner.send_signal(signal.SIGKILL)      # the owner only, not its process group
        owner.wait()
        assert _gone_within(server, 10.0), f"temporary server pid {server} outlived its SIGKILLed owner"
    finally:
        _kill(owner.pid, server)


def test_next_start_ends_a_server_whose_watchdog_died_too(tmp_path):
    home = tmp_path / "prefect"
    owner, server = _start_owner(home)
    records = list((home / "zoorank-temporary-servers").glob("*.json"))
    assert [r.name for r in records] == [f"{server}.json"]
    watchdog = ProcessIdentity.parse(json.loads(records[0].read_text())["watchdog"]).pid
    second = None
    try:
        _kill(watchdog)                        # no watchdog any more: the server would be an orphan
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        time.sleep(1.0)
        assert pid_exists(server), "without its watchdog the server should have survived"
        second, second_server = _start_owner(home)   # the next run starts its own server ...
        assert _gone_within(server, 10.0), "the next start did not end the orphaned server"   # ... after ending it
        assert pid_exists(second_server)
        remaining = sorted(r.name for r in (home / "zoorank-temporary-servers").glob("*.json"))
        assert remaining == [f"{second_server}.json"]
        second.send_signal(signal.SIGKILL)
        second.wait()
        assert _gone_within(second_server, 10.0)
    finally:
        _kill(owner.pid, server, watchdog, *( [second.pid] if second else []))
