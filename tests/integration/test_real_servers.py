"""Reliability against real servers, as teams run them: a real ``prefect server start`` and a real
``mlflow server`` (SQLite backend store, local artifact folder), four concurrent ``zoorank rank``
processes on one shared store, one of them SIGKILLed mid-run and rerun.

* every table equals a solo run's (its own store, its own temporary Prefect server, no tracking);
* MLflow holds exactly one finished parent run per logical ranking, each with one finished run
  per pair; nothing stays RUNNING: the killed process's parent run, left RUNNING by the kill, is
  adopted and completed by the rerun, which records the dead owner (``zoorank.recovered_from``);
* every entry of the shared store verifies (a temporary folder may only belong to the killed process).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from tests.integration.real_server import real_mlflow_server, real_prefect_server
from zoorank.storage.arrays import ArrayStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ZOO = "cnn_mnist,cnn_usps,cnn_digitrec"
SHARED = ["lead", "logme", "knn"]     # one logical ranking, three processes at once
OWN = ["lead", "logme", "hscore"]     # another ranking on the same store: the process that is killed
PER_CLASS = "8"


def _cmd(metrics: list[str], csv, *extra: str) -> list[str]:
    return [sys.executable, "-m", "zoorank.cli", "rank", "--zoo", ZOO, "--dataset", "digits",
            "--per-class", PER_CLASS, "--metrics", ",".join(metrics), "--workers", "2", "--csv", str(csv), *extra]


def _spawn(cmd, env, log_path) -> subprocess.Popen:
    with open(log_path, "wb") as log:  # a file, not a pipe: nothing can block on a full pipe
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _log(path) -> str:
    return open(path, errors="replace").read()[-4000:]


def _ranking_runs(client, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return list(client.search_runs([exp.experiment_id], "tags.`zoorank.kind` = 'ranking'", max_results=1000))


def _run_of(client, experiment: str, pid: int):
    """The parent run whose owners include the process ``pid`` (None while it has not opened one)."""
    for r in _ranking_runs(client, experiment):
        if any(o.split(":")[2] == str(pid) for o in (r.data.tags.get("zoorank.owners") or "").split(",") if o):
            return r
    return None


def _assert_same_scores(table: pd.DataFrame, solo: pd.DataFrame, metrics: list[str], what: str) -> None:
    a, b = table.set_index("model").sort_index(), solo.set_index("model").sort_index()
    assert list(a.index) == list(b.index), what
    # the same stages on the same inputs in other processes: equal to float64 rounding of float32 work
    np.testing.assert_allclose(a[metrics].to_numpy(float), b[metrics].to_numpy(float), rtol=1e-6, err_msg=what)


def test_four_concurrent_rankings_one_killed_against_real_servers(tmp_path):
    from mlflow.tracking import MlflowClient

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "ZOORANK_"))}
    solo_env = {**base_env, "ZOORANK_HOME": str(tmp_path / "solo")}
    solo = _spawn(_cmd(SHARED + ["hscore"], tmp_path / "solo.csv", "--no-track"), solo_env, tmp_path / "solo.log")
    procs: list[subprocess.Popen] = [solo]
    try:
        with real_prefect_server(tmp_path) as prefect, real_mlflow_server(tmp_path) as mlflow_url:
            env = {**base_env, "PREFECT_API_URL": prefect.api, "PREFECT_HOME": str(tmp_path / "prefect"),
                   "ZOORANK_HOME": str(tmp_path / "team"), "ZOORANK_STORE": str(tmp_path / "shared.zarr"),
                   "ZOORANK_TRACKING_URI": mlflow_url, "ZOORANK_EXPERIMENT": "teams"}
            client = MlflowClient(mlflow_url)
            shared = [_spawn(_cmd(SHARED, tmp_path / f"t{i}.csv"), env, tmp_path / f"t{i}.log") for i in range(3)]
            victim = _spawn(_cmd(OWN, tmp_path / "own.csv"), env, tmp_path / "own.log")
            procs += [*shared, victim]

            # kill -9 the fourth process mid-run: once its parent run is open, before it finishes
            deadline, killed_run = time.time() + 400, None
            while killed_run is None:
                assert victim.poll() is None, f"finished before it could be killed:\n{_log(tmp_path / 'own.log')}"
                assert time.time() < deadline, "the fourth process opened no MLflow run in 400 s"
                killed_run = _run_of(client, "teams", victim.pid)
                time.sleep(0.2)
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
            assert victim.returncode == -signal.SIGKILL
            left = client.get_run(killed_run.info.run_id)
            assert left.info.status == "RUNNING"            # the kill left it so; the rerun must end it

            for i, p in enumerate(shared):
                assert p.wait(timeout=600) == 0, _log(tmp_path / f"t{i}.log")
            rerun = subprocess.run(_cmd(OWN, tmp_path / "own.csv"), env=env, capture_output=True, text=True,
                                   timeout=600)
            assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
            assert solo.wait(timeout=600) == 0, _log(tmp_path / "solo.log")

            # every table equals the solo run's
            reference = pd.read_csv(tmp_path / "solo.csv")
            for i in range(3):
                _assert_same_scores(pd.read_csv(tmp_path / f"t{i}.csv"), reference, SHARED, f"process {i}")
            _assert_same_scores(pd.read_csv(tmp_path / "own.csv"), reference, OWN, "killed and rerun")

            # MLflow: one finished parent per logical ranking, nothing left RUNNING
            by_key = defaultdict(list)
            for r in _ranking_runs(client, "teams"):
                by_key[r.data.tags["zoorank.logical_key"]].append(r)
            assert len(by_key) == 2, {k: [r.info.status for r in v] for k, v in by_key.items()}
            for key, runs in by_key.items():
                finished = [r for r in runs if r.info.status == "FINISHED"]
                assert len(finished) == 1, (key, [r.info.status for r in runs])
                assert not [r for r in runs if r.info.status == "RUNNING"], key
                pairs = list(client.search_runs([finished[0].info.experiment_id],
                                                f"tags.`mlflow.parentRunId` = '{finished[0].info.run_id}'"))
                assert sorted(p.data.tags["zoorank.model"] for p in pairs) == sorted(ZOO.split(","))
                assert all(p.info.status == "FINISHED" for p in pairs)
            adopted = client.get_run(killed_run.info.run_id)
            assert adopted.info.status == "FINISHED"
            assert f":{victim.pid}:" in adopted.data.tags["zoorank.recovered_from"]

            # the shared store: every entry verifies; only the killed process may have left a temporary
            store = ArrayStore(tmp_path / "shared.zarr")
            for key in store.list():
                store.verify(key)
            for key in store.list_records():
                store.get_record(key)
            temporaries = [k for kind, k, _ in store._walk() if kind == "tmp"]
            assert all(f"-{victim.pid}-" in k for k in temporaries), temporaries
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
