"""The combined ranking through the real CLI (issue 15): a ranking with the shipped history gets a
`combined` column as its recommended order, the notes and expected regret, `combined.json` on the
MLflow run (real temporary Prefect server, SQLite MLflow, local Zarr store); its fully cached rerun
prints the same answer and still imports no torch, Prefect or MLflow (the history's table is
memoised in the store)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from zoorank.cli import main as cli_main
from zoorank.pipeline.history import SCORES_FILE, SHIPPED_DIR, TRIALS_FILE

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not (SHIPPED_DIR / TRIALS_FILE).is_file(), reason="no shipped ground truth")]

ARGS = ["rank", "--zoo", "cnn_usps,cnn_digitrec,cnn_mnist", "--dataset", "digits", "--per-class", "3",
        "--metrics", "lead,leep,lgc"]
_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)\s*$")


def test_rank_with_history_recommends_combined_and_logs_it(prefect_server, settings, capsys, monkeypatch, tmp_path):
    import shutil

    shipped = tmp_path / "history"        # a snapshot: the ground-truth job may rewrite the shipped file meanwhile
    shipped.mkdir()
    for name in (TRIALS_FILE, SCORES_FILE):
        if (SHIPPED_DIR / name).is_file():
            shutil.copy(SHIPPED_DIR / name, shipped / name)
    monkeypatch.setenv("ZOORANK_HISTORY", str(shipped))
    monkeypatch.setenv("COLUMNS", "100")
    assert cli_main([*ARGS, "--home", str(settings.home)]) == 0
    first = capsys.readouterr().out
    assert "best first by combined" in first and "combined score" in first
    assert "learned from" in first
    run_id = re.search(r"MLflow run (\w+)", first).group(1)

    from zoorank.storage.tracking import Tracker

    tracker = Tracker.from_settings(settings)
    run = tracker.client.get_run(run_id)
    assert run.data.tags["zoorank.recommended"] == "combined"
    path = tracker.client.download_artifacts(run_id, "combined.json")
    info = json.load(open(path))["digits"]
    assert "digits" not in info["fitted_on"] and info["fitted_on"]
    # the tie set shown is combined's own (refits on resampled history datasets), LEAD's is a note
    assert info["tie"]["score"] == "combined" and info["tie"]["n_images"] == len(info["fitted_on"])
    words = " ".join(first.split())       # the notes are wrapped to the terminal width
    assert f"refits of the combination on resamples of the {len(info['fitted_on'])} history datasets" in words
    assert "by lead alone" in words or not info["tie"]["models"]
    # a leave-one-out regret needs two scored history datasets besides the ranked one
    has_regret = len(info["fitted_on"]) >= 2
    assert ("expected top-1 regret of `combined`" in first) == has_regret
    assert ("digits.expected_top1_regret" in run.data.metrics) == has_regret

    env = {**os.environ, **settings.as_env(), "COLUMNS": "100", "ZOORANK_HISTORY": str(shipped)}
    env.pop("PREFECT_API_URL", None)
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "zoorank.cli", *ARGS, "--home",
                          str(settings.home)], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    imported = {m.group(1) for line in res.stderr.splitlines() if (m := _IMPORTED.match(line))}
    assert "zoorank.pipeline.history" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in ("torch", "prefect", "mlflow"))
    assert not heavy, f"the cached path with history imported {heavy[:10]}"
    assert res.stdout.split("done in")[0] == first.split("done in")[0]
