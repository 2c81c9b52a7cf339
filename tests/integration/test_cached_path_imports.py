"""A fully cached `zoorank rank` imports no torch, Prefect or MLflow, nor scikit-learn's estimators
(issue 16): the first run computes every stage (real temporary Prefect server, local Zarr store,
SQLite MLflow); the rerun, in a fresh interpreter under ``python -X importtime``, is served from
the store and must print the same ranking without loading those packages.

``digits`` itself ships inside scikit-learn (``zoorank.data.digits`` calls
``sklearn.datasets.load_digits``), so ``sklearn.datasets`` is part of loading that dataset;
what must stay out is the metric side (``sklearn.svm`` for LEAD's liblinear SVMs, etc.)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from zoorank.cli import main as cli_main

pytestmark = pytest.mark.integration

ZOO = "cnn_usps,cnn_digitrec"
METRICS = "lead,leep,lgc"          # LEAD (three cached stages), a source-probability and a feature metric
HEAVY = ("torch", "prefect", "mlflow")
SKLEARN_ESTIMATORS = ("sklearn.svm", "sklearn.linear_model", "sklearn.neighbors", "sklearn.decomposition")
_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$")


def _args(settings, csv):
    return ["rank", "--zoo", ZOO, "--dataset", "digits", "--per-class", "3", "--metrics", METRICS,
            "--home", str(settings.home), "--csv", str(csv)]


def _imported_modules(stderr: str) -> set[str]:
    """Every module ``-X importtime`` reports (one line per module, on stderr)."""
    return {m.group(1) for line in stderr.splitlines() if (m := _IMPORTED.match(line))}


def _answer(stdout: str) -> str:
    """The printed ranking and its notes (what follows "done in" names the run and its paths)."""
    return stdout.split("done in")[0]


def test_cached_rerun_imports_no_torch_prefect_mlflow_and_prints_the_same_table(prefect_server, settings,
                                                                                  tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert cli_main(_args(settings, tmp_path / "first.csv")) == 0
    first = capsys.readouterr()
    assert "(Prefect flow)" in first.out

    env = {**os.environ, **settings.as_env(), "COLUMNS": "100"}
    env.pop("PREFECT_API_URL", None)                 # the rerun must not need a Prefect server at all
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoorank.cli",
                          *_args(settings, tmp_path / "again.csv")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "every stage from the cache" in res.stdout

    imported = _imported_modules(res.stderr)
    assert {"zoorank.pipeline.cached_ranking", "zoorank.metrics.lead.evolution", "zarr", "pandas"} <= imported  # the probe works
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert not heavy, f"the cached path imported {heavy[:10]}"
    assert not imported & set(SKLEARN_ESTIMATORS)
    assert "zoorank.metrics.lead.svm" not in imported and "zoorank.compute.extract" not in imported

    assert _answer(res.stdout) == _answer(first.out)
    a, b = (pd.read_csv(tmp_path / f"{name}.csv") for name in ("first", "again"))
    same = [c for c in a.columns if c not in ("seconds", "cached_stages")]
    pd.testing.assert_frame_equal(a[same], b[same])     # every metric's score, bit for bit via CSV
    assert (b["cached_stages"] > 0).all()
