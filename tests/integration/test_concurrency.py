"""Two `zoorank rank` processes at once on the same store and MLflow DB: both finish, results
identical, every entry valid, one parent run for the one logical ranking."""
from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest

from zoorank.config import Settings
from zoorank.storage.arrays import ArrayStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ZOO = "cnn_mnist,cnn_usps,cnn_digitrec"


def test_two_processes_share_store_and_tracking(tmp_path):
    settings = Settings.from_env(env={}, home=tmp_path / "shared")
    env = {**os.environ, **settings.as_env()}
    env.pop("PREFECT_API_URL", None)
    procs = []
    for i in range(2):
        cmd = [sys.executable, "-m", "zoorank.cli", "rank", "--zoo", ZOO, "--dataset", "digits",
               "--per-class", "8", "--metrics", "lead,logme,knn", "--csv", str(tmp_path / f"t{i}.csv")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=900)[0].decode() for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]

    a, b = (pd.read_csv(tmp_path / f"t{i}.csv") for i in range(2))
    pd.testing.assert_frame_equal(a.drop(columns=["seconds", "cached_stages"]),
                                  b.drop(columns=["seconds", "cached_stages"]))

    store = ArrayStore(settings.store)
    keys = [k for k in store.list() if not str(k).startswith("scores")]
    assert keys and all(store.exists(k) for k in keys)

    mlflow.set_tracking_uri(settings.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[settings.experiment], filter_string="tags.`zoorank.kind` = 'ranking'")
    assert len(runs) == 1
    pairs = mlflow.search_runs(experiment_names=[settings.experiment], filter_string="tags.`zoorank.kind` = 'pair'")
    assert len(pairs) == 3
