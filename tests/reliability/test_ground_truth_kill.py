"""Kill -9 `zoorank ground-truth` inside its third fine-tuning trial; the rerun trains only the
unfinished trials (finished trial records are not rewritten) and equals an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from zoorank.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARGS = ["ground-truth", "--zoo", "cnn_mnist,cnn_usps", "--dataset", "digits", "--lrs", "0.1,0.01", "--wds", "0",
        "--steps", "3", "--batch-size", "8", "--train-per-class", "3", "--val-per-class", "2",
        "--test-per-class", "2", "--threads", "1", "--no-track"]


def _run(settings: Settings, csv, kill_at: str | None = None) -> int:
    env = {**os.environ, **settings.as_env()}
    env.pop("PREFECT_API_URL", None)
    if kill_at:
        env["ZOORANK_KILL_AT"] = kill_at
    with open(settings.home.parent / f"{settings.home.name}.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zoorank.cli", *ARGS, "--csv", str(csv)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=600)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _trial_records(settings: Settings) -> dict[str, float]:
    folder = settings.store / "gt_trial"
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json") if p.name != "zarr.json"} \
        if folder.is_dir() else {}


def test_kill_inside_a_trial_then_resume_trial_by_trial(tmp_path):
    killed = Settings.from_env(env={}, home=tmp_path / "killed")
    assert _run(killed, tmp_path / "killed.csv", kill_at="gt_trial:3") == -signal.SIGKILL
    before = _trial_records(killed)
    assert len(before) == 2                      # two of the four trials had finished

    assert _run(killed, tmp_path / "resumed.csv") == 0
    after = _trial_records(killed)
    assert len(after) == 4
    assert all(after[name] == mtime for name, mtime in before.items())   # finished trials untouched

    fresh = Settings.from_env(env={}, home=tmp_path / "fresh")
    assert _run(fresh, tmp_path / "fresh.csv") == 0
    cols = ["dataset", "model", "test_top1", "val_top1", "best_lr", "best_wd"]
    resumed = pd.read_csv(tmp_path / "resumed.csv", comment="#")[cols].sort_values(["dataset", "model"])
    uninterrupted = pd.read_csv(tmp_path / "fresh.csv", comment="#")[cols].sort_values(["dataset", "model"])
    pd.testing.assert_frame_equal(resumed.reset_index(drop=True), uninterrupted.reset_index(drop=True))
