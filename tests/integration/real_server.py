"""Real servers for the slow tests: ``prefect server start`` (schedule/deployment tests, the
real-server reliability test) on a free port with its own PREFECT_HOME, run more processes
against it, poll a deployment's runs, and kill every process group at the end; and a real
``mlflow server`` (:func:`real_mlflow_server`)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


class RealServer:
    def __init__(self, tmp_path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.api = f"http://127.0.0.1:{self.port}/api"
        self.env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": self.api,
                    "PREFECT_SERVER_API_PORT": str(self.port), "ZOORANK_HOME": str(tmp_path / "zr")}
        self.env.pop("PREFECT_API_KEY", None)
        (tmp_path / "prefect").mkdir(parents=True, exist_ok=True)  # Prefect does not create nested homes
        self.bin_dir = os.path.dirname(sys.executable)
        self.procs: list[subprocess.Popen] = []

    def spawn(self, *argv, cwd=None) -> subprocess.Popen:
        """Start ``argv`` (a command of this venv's bin folder) in its own process group."""
        p = subprocess.Popen([os.path.join(self.bin_dir, argv[0]), *argv[1:]], env=self.env, cwd=cwd,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def run(self, *argv, cwd=None, timeout=180) -> str:
        """Run a CLI command to completion against the server; its output, or an assertion."""
        res = subprocess.run([os.path.join(self.bin_dir, argv[0]), *argv[1:]], env=self.env, cwd=cwd,
                             capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, f"{' '.join(argv)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        return res.stdout

    def post(self, path, body):
        req = urllib.request.Request(f"{self.api}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    def wait_healthy(self, timeout=120):
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.api}/health", timeout=2).read()
                return
            except OSError:
                assert time.time() < deadline, f"prefect server did not become healthy in {timeout} s"
                time.sleep(1)

    def wait_for_completed_run(self, deployment: str, timeout=240):
        """Poll until a run of ``deployment`` completes; a failed or crashed run fails the test.
        Returns the deployment records (as the API gives them)."""
        deadline, state, deps = time.time() + timeout, None, []
        while time.time() < deadline and state != "COMPLETED":
            time.sleep(3)
            try:
                deps = self.post("/deployments/filter", {"deployments": {"name": {"any_": [deployment]}}})
                runs = self.post("/flow_runs/filter",
                                 {"flow_runs": {"deployment_id": {"any_": [d["id"] for d in deps]}}})
            except OSError:
                continue
            states = [r["state_type"] for r in runs if r.get("state_type")]
            state = "COMPLETED" if "COMPLETED" in states else (states[0] if states else None)
            assert "FAILED" not in states and "CRASHED" not in states, states
        assert state == "COMPLETED", f"no completed run of deployment {deployment!r} (last state {state})"
        return deps

    def close(self):
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)


@contextlib.contextmanager
def real_prefect_server(tmp_path):
    server = RealServer(tmp_path)
    try:
        server.spawn("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(server.port))
        server.wait_healthy()
        yield server
    finally:
        server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log_path, timeout: float = 180) -> None:
    """Poll ``url`` until it answers; fail with the server's log if it exits or times out."""
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[:3]} exited ({proc.returncode}):\n"
                                     f"{open(log_path, errors='replace').read()[-3000:]}")
            assert time.time() < deadline, f"{url} did not answer in {timeout} s"
            time.sleep(1)


@contextlib.contextmanager
def real_mlflow_server(tmp_path):
    """A real ``mlflow server`` (SQLite backend store, local artifact folder) on a free port, in its
    own process group; yields its URL (``http://127.0.0.1:<port>``) and kills the group at the end."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "mlflow-server.log"
    cmd = [os.path.join(os.path.dirname(sys.executable), "mlflow"), "server",
           "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow-server.db'}",
           "--artifacts-destination", str(tmp_path / "mlflow-server-artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    try:
        wait_http(f"{url}/health", proc, log_path)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
