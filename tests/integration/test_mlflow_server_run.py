"""A ranking logged to a real ``mlflow server`` (HTTP), checked through its REST API: the parent
run with its tags (dataset, zoo, metric versions), per-model metrics, the logged table and the
CSV / plot / tie-set artifacts; the pair runs nested under it."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ZOO = ["cnn_mnist", "cnn_usps"]
METRICS = ["lead", "logme", "lgc"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    log = open(tmp_path / "mlflow-server.log", "wb")
    proc = subprocess.Popen([mlflow_bin, "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-3000:]
            assert time.time() < deadline, "mlflow server did not answer /health in 180 s"
            time.sleep(1)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def _get(url: str, endpoint: str, **params):
    q = urllib.parse.urlencode(params)
    return json.loads(urllib.request.urlopen(f"{url}/api/2.0/mlflow/{endpoint}?{q}", timeout=30).read())


def test_ranking_run_through_the_rest_api(prefect_server, mlflow_server, tmp_path):
    from zoorank.api import rank
    from zoorank.config import Settings

    settings = Settings.from_env(env={}, home=tmp_path / "zr", tracking_uri=mlflow_server)
    res = rank(ZOO, "digits", per_class=5, metrics=METRICS, settings=settings, details=True)
    run = _get(mlflow_server, "runs/get", run_id=res.run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["zoorank.kind"] == "ranking" and tags["zoorank.datasets"] == "digits"
    assert tags["zoorank.zoo"] == ",".join(sorted(ZOO))
    assert {m.split("=")[0] for m in tags["zoorank.metric_versions"].split(",")} == set(METRICS)
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    table = res.table.set_index("model")
    for model in ZOO:
        for m in METRICS:
            assert metrics[f"digits.{model}.{m}"] == pytest.approx(table.loc[model, m], rel=1e-12)
        assert metrics[f"digits.{model}.rank"] == table.loc[model, "rank"]
    files = {f["path"] for f in _get(mlflow_server, "artifacts/list", run_id=res.run_id).get("files", [])}
    assert {"rankings", "tables", "ties.json"} <= files
    tables = {f["path"] for f in _get(mlflow_server, "artifacts/list", run_id=res.run_id, path="tables")["files"]}
    assert "tables/ranking_digits.json" in tables
    rankings = {f["path"] for f in _get(mlflow_server, "artifacts/list", run_id=res.run_id, path="rankings")["files"]}
    assert {"rankings/ranking_digits.csv", "rankings/ranking_digits.png"} <= rankings
    # the logged table is the one MLflow's UI renders: registered in the run's tags
    assert "mlflow.loggedArtifacts" in tags and "tables/ranking_digits.json" in tags["mlflow.loggedArtifacts"]
    # nested pair runs, one per model, finished
    exp = run["info"]["experiment_id"]
    req = urllib.request.Request(f"{mlflow_server}/api/2.0/mlflow/runs/search", method="POST",
                                 data=json.dumps({"experiment_ids": [exp], "filter":
                                                  f"tags.mlflow.parentRunId = '{res.run_id}'"}).encode(),
                                 headers={"Content-Type": "application/json"})
    pairs = json.loads(urllib.request.urlopen(req, timeout=30).read())["runs"]
    assert len(pairs) == len(ZOO) and all(p["info"]["status"] == "FINISHED" for p in pairs)
