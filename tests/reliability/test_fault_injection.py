"""Kill -9 the `zoorank rank` process inside each stage in turn (ZOORANK_KILL_AT makes it
SIGKILL itself at a precise point), rerun: it completes, recomputes no finished stage, and its
ranking equals an uninterrupted run's; MLflow holds no duplicate runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import mlflow
import numpy as np
import pytest

from zoorank.api import rank
from zoorank.config import Settings
from tests.integration.test_resume import _finished_stages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ZOO = ["cnn_mnist", "cnn_usps", "cnn_digitrec"]
METRICS = ["lead", "logme", "knn"]
PER_PAIR = 3 + len(METRICS)


@pytest.fixture(scope="module")
def uninterrupted(prefect_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("reference")
    return rank(ZOO, "digits", per_class=10, metrics=METRICS, workers=1, track=False,
                settings=Settings.from_env(env={}, home=home))


@pytest.mark.parametrize("point", ["features", "svm_logits", "network_ntk_eigenvalues", "score", "mlflow"])
def test_kill_inside_each_stage_then_resume(point, uninterrupted, prefect_server, tmp_path):
    settings = Settings.from_env(env={}, home=tmp_path / "zr")
    env = {**os.environ, **settings.as_env(), "ZOORANK_KILL_AT": point}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "zoorank.cli", "rank", "--zoo", ",".join(ZOO), "--dataset", "digits",
           "--per-class", "10", "--metrics", ",".join(METRICS), "--workers", "1"]
    log = tmp_path / "rank.log"
    with open(log, "wb") as out:  # a file, not a pipe: the orphaned Prefect server would hold a pipe open
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=600)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the temporary server the killed process left behind
            except ProcessLookupError:
                pass
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]

    finished = _finished_stages(settings.store)
    total = PER_PAIR * len(ZOO)
    resumed = rank(ZOO, "digits", per_class=10, metrics=METRICS, workers=1, settings=settings)
    assert int((PER_PAIR - resumed["cached_stages"]).sum()) == total - finished
    if point == "mlflow":
        assert finished == total           # every stage had finished before the kill
    assert resumed["model"].tolist() == uninterrupted["model"].tolist()
    # features and float32 SVM/NTK stages computed in another process (other BLAS threading)
    # differ in their last bits only; every score is continuous in them (sample identity picks
    # folds and subsets, tests/unit/test_continuity.py): measured <= 2e-7 relative
    np.testing.assert_allclose(resumed[METRICS].to_numpy(), uninterrupted[METRICS].to_numpy(), rtol=1e-6)

    mlflow.set_tracking_uri(settings.tracking_uri)
    parents = mlflow.search_runs(experiment_names=[settings.experiment],
                                 filter_string="tags.`zoorank.kind` = 'ranking'")
    pairs = mlflow.search_runs(experiment_names=[settings.experiment],
                               filter_string="tags.`zoorank.kind` = 'pair'")
    assert len(parents) == 1 and (parents["status"] == "FINISHED").all()
    assert len(pairs) == len(ZOO) and (pairs["status"] == "FINISHED").all()
