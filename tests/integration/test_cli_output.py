"""What `zoorank rank` prints: the compact answer, its formats, odd terminals, the cached path,
per_class as an upper bound, and Ctrl-C. Real Prefect (temporary server), Zarr store, SQLite MLflow."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zoorank.api import normalise_per_class, rank
from zoorank.cli import main as cli_main
from zoorank.reporting.render import render
from zoorank.reporting.summary import best_baselines, compact_view, recommended_column
from zoorank.reporting.ties import top_tie_set

pytestmark = pytest.mark.integration

ZOO = ["cnn_mnist", "cnn_usps"]
METRICS = ["lead", "logme", "lgc"]


def _table(models=("efficientnet_b0_nsfw", "cnn_usps", "mobilenet_v2", "vgg16bn_craft"), combined=None):
    rng = np.random.default_rng(0)
    n = len(models)
    t = pd.DataFrame({"dataset": "emoji", "rank": range(1, n + 1), "model": list(models),
                      "lead": -np.arange(1, n + 1) / 10, "logme": rng.normal(size=n), "leep": [np.nan, *rng.normal(size=n - 1)],
                      "lgc": rng.normal(size=n), "lfc": rng.normal(size=n), "knn": rng.normal(size=n),
                      "seconds": 1.5, "cached_stages": 3, "failed": ""})
    if combined is not None:
        t["combined"] = combined
    return t


# ------------------------------------------------------------------ the view, without a run
def test_baselines_come_from_the_benchmark_table(tmp_path, monkeypatch):
    """The three best mean-tau baselines of whatever benchmark table is there, LEAD excluded."""
    table = tmp_path / "full.csv"
    pd.DataFrame({"metric": ["lead", "knn", "logme", "lfc", "leep"], "mean": [0.9, 0.1, 0.5, 0.3, np.nan]}
                 ).to_csv(table, index=False)
    monkeypatch.setenv("ZOORANK_BENCHMARK_TABLE", str(table))
    chosen = best_baselines()
    assert chosen.metrics == ["logme", "lfc", "knn"] and chosen.tau["logme"] == 0.5
    monkeypatch.setenv("ZOORANK_BENCHMARK_TABLE", str(tmp_path / "missing.csv"))
    assert best_baselines().metrics == []


def test_shipped_benchmark_picks_three_non_lead_baselines():
    full = pd.read_csv(Path(__file__).resolve().parents[2] / "results/benchmark/tables/full.csv", index_col=0)
    expected = list(full.drop(index=["lead"])["mean"].sort_values(ascending=False).index[:3])
    assert best_baselines().metrics == expected


def test_compact_view_ranks_baselines_within_dataset_and_follows_combined():
    t = _table()
    view = compact_view(t, ["leep", "lgc"])
    assert recommended_column(t) == "lead"
    assert view["model"].tolist() == t.sort_values("lead", ascending=False)["model"].tolist()
    # baseline ranks: 1 = its highest score; NaN stays missing
    lgc_order = t.sort_values("lgc", ascending=False)["model"].tolist()
    assert view.set_index("model").loc[lgc_order[0], "lgc_rank"] == 1
    assert pd.isna(view.set_index("model").loc["efficientnet_b0_nsfw", "leep_rank"])
    assert sorted(view["leep_rank"].dropna().tolist()) == [1, 2, 3]
    # a combined column, when present, is the recommended order; LEAD is still shown
    t2 = _table(combined=[0.1, 0.4, 0.3, 0.2])
    v2 = compact_view(t2, ["lgc"])
    assert recommended_column(t2) == "combined"
    assert v2["model"].tolist() == ["cnn_usps", "mobilenet_v2", "vgg16bn_craft", "efficientnet_b0_nsfw"]
    assert "lead" in v2 and v2["rank"].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_every_format_holds_every_model(fmt):
    t = _table()
    ties = {"emoji": top_tie_set({m: np.full(10, -i, float) for i, m in enumerate(t["model"])}, n_boot=20)}
    text = render(t, fmt, baselines=best_baselines(), ties=ties, notes={"emoji": ["a note"]})
    assert all(m in text for m in t["model"])
    if fmt == "csv":
        back = pd.read_csv(io.StringIO(text))
        assert back["model"].tolist()[0] == "efficientnet_b0_nsfw" and "tied" in back
    if fmt == "json":
        data = json.loads(text)
        assert data["recommended_score"] == "lead" and len(data["rows"]) == 4
        assert data["ties"]["emoji"]["models"] == ["efficientnet_b0_nsfw"]
    if fmt == "markdown":
        assert text.count("\n| ") == 4 + 1  # header + one row per model (the separator starts with |-)


def test_narrow_terminal_and_ascii_only():
    """80 columns: every line fits; the table is plain ASCII, so any locale can print it."""
    t = _table(models=[f"a_rather_long_model_name_{i}" for i in range(5)])
    for all_metrics in (False, True):
        text = render(t, "table", baselines=best_baselines(), all_metrics=all_metrics, width=80,
                      notes={"emoji": ["x " * 100]})
        assert max(len(line) for line in text.splitlines()) <= 80
        text.encode("ascii")


@pytest.mark.parametrize("given, expected", [(None, None), (0, None), ("all", None), ("ALL", None), (5, 5), ("7", 7)])
def test_one_convention_for_all_images(given, expected):
    assert normalise_per_class(given) == expected


@pytest.mark.parametrize("bad", [-1, "some", 2.5, True])
def test_bad_per_class_is_named(bad):
    with pytest.raises(ValueError, match="per_class"):
        normalise_per_class(bad)


def test_cli_rejects_bad_per_class(capsys):
    with pytest.raises(SystemExit):
        cli_main(["rank", "--dataset", "digits", "--per-class", "lots"])
    assert "--per-class" in capsys.readouterr().err


# ------------------------------------------------------------------ real rankings
def test_cli_rank_prints_compact_answer_then_serves_from_cache(prefect_server, settings, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    args = ["rank", "--zoo", ",".join(ZOO), "--dataset", "digits", "--per-class", "5", "--metrics",
            ",".join(METRICS), "--home", str(settings.home)]
    assert cli_main(args) == 0
    cold = capsys.readouterr()
    assert "best first by LEAD" in cold.out and all(m in cold.out for m in ZOO)
    answer = cold.out.split("done in")[0]                 # the table and its notes (paths follow)
    assert max(len(line) for line in answer.splitlines()) <= 80
    # not a terminal: one line per finished pair, no per-stage log
    pair_lines = [line for line in cold.err.splitlines() if line.strip().startswith("[")]
    assert len(pair_lines) == len(ZOO) and "features" not in cold.err
    assert "(Prefect flow)" in cold.out

    page = settings.home / "page.html"
    assert cli_main(args + ["--format", "json", "--report", str(page)]) == 0
    again = capsys.readouterr()
    data = json.loads(again.out)
    assert {r["model"] for r in data["rows"]} == set(ZOO)
    assert "every stage from the cache" in again.err
    assert page.is_file() and all(m in page.read_text() for m in ZOO)    # rank --report

    res = rank(ZOO, "digits", per_class=5, metrics=METRICS, settings=settings, details=True)
    assert res.from_cache
    assert (res.table["cached_stages"] == 3 + len(METRICS)).all()   # as the flow counts them


@pytest.mark.slow
def test_cached_path_equals_the_flow_and_verbose_restores_stage_log(prefect_server, settings, capsys):
    first = rank(ZOO, "digits", per_class=5, metrics=METRICS, settings=settings, details=True)
    cached = rank(ZOO, "digits", per_class=5, metrics=METRICS, settings=settings, details=True)
    flow = rank(ZOO, "digits", per_class=5, metrics=METRICS, settings=settings, details=True,
                use_cache_path=False)
    assert not first.from_cache and cached.from_cache and not flow.from_cache
    pd.testing.assert_frame_equal(cached.table.drop(columns="seconds"), flow.table.drop(columns="seconds"))
    assert cached.ties["digits"] == flow.ties["digits"] == first.ties["digits"]
    assert cached.run_id == flow.run_id == first.run_id          # the same logical ranking, one run
    # -v: today's per-stage log (one more metric, so that there is work and a flow)
    assert cli_main(["rank", "--zoo", ",".join(ZOO), "--dataset", "digits", "--per-class", "5", "--metrics",
                     ",".join(METRICS + ["knn"]), "--home", str(settings.home), "-v", "--no-track"]) == 0
    verbose = capsys.readouterr().err
    stage_lines = [line for line in verbose.splitlines() if " cached " in line or " computed " in line]
    assert any("features" in line and "cached" in line for line in stage_lines)
    assert any("knn" in line and "computed" in line for line in stage_lines)


def _env(settings, **extra):
    env = {**os.environ, **settings.as_env(), **extra}
    env.pop("PREFECT_API_URL", None)
    return env


@pytest.mark.slow
def test_odd_terminal_subprocess(tmp_path):
    """NO_COLOR, 80 columns and the C locale with an ASCII stdout: a readable table, exit 0."""
    from zoorank.config import Settings

    settings = Settings.from_env(env={}, home=tmp_path / "zr")
    env = _env(settings, NO_COLOR="1", COLUMNS="80", LANG="C", LC_ALL="C", PYTHONIOENCODING="ascii")
    res = subprocess.run([sys.executable, "-m", "zoorank.cli", "rank", "--zoo", ",".join(ZOO), "--dataset",
                          "digits", "--per-class", "5", "--metrics", ",".join(METRICS)], env=env,
                         capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-3000:]
    out = res.stdout.decode("ascii")
    assert "best first by LEAD" in out and all(m in out for m in ZOO)
    assert max(len(line) for line in out.split("done in")[0].splitlines()) <= 80
    assert "\x1b[" not in out and "\x1b[" not in res.stderr.decode("ascii")


def _stage_entries(store: Path) -> int:
    folder = store / "features"
    return sum(1 for p in folder.iterdir() if p.is_dir() and ".tmp-" not in p.name) if folder.is_dir() else 0


def _running_ranking(settings) -> bool:
    import mlflow

    if not (settings.home / "mlflow.db").exists():
        return False
    try:
        mlflow.set_tracking_uri(settings.tracking_uri)
        runs = mlflow.search_runs(experiment_names=[settings.experiment],
                                  filter_string="tags.`zoorank.kind` = 'ranking'")
    except Exception:  # noqa: BLE001 - the database is still being created by the subprocess
        return False
    return len(runs) == 1 and runs["status"].iloc[0] == "RUNNING"


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_marks_run_killed_and_keeps_finished_stages(prefect_server, tmp_path):
    """SIGINT to a real `zoorank rank`: exit 130 with one line, the MLflow parent run KILLED, the
    finished stages cached (a rerun computes only the rest and finishes the same run)."""
    import mlflow

    from zoorank.config import Settings

    settings = Settings.from_env(env={}, home=tmp_path / "zr")
    zoo = ["cnn_mnist", "cnn_usps", "cnn_digitrec", "cnn_svhn", "vgg16_hed"]
    cmd = [sys.executable, "-m", "zoorank.cli", "rank", "--zoo", ",".join(zoo), "--dataset", "digits",
           "--per-class", "10", "--metrics", ",".join(METRICS), "--workers", "1"]
    err = tmp_path / "err.txt"
    with open(err, "wb") as fh:
        proc = subprocess.Popen(cmd, env=_env(settings), stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)
        try:
            deadline = time.time() + 400
            while _stage_entries(settings.store) < 1 or not _running_ranking(settings):
                assert proc.poll() is None, err.read_text()[-3000:]
                assert time.time() < deadline, "no stage finished in 400 s"
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = err.read_text()
    assert rc == 130, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("zoorank: interrupted; finished stages stay cached") and "KILLED" in last
    assert "Traceback" not in text
    mlflow.set_tracking_uri(settings.tracking_uri)
    runs = mlflow.search_runs(experiment_names=[settings.experiment], filter_string="tags.`zoorank.kind` = 'ranking'")
    assert runs["status"].tolist() == ["KILLED"]
    finished = _stage_entries(settings.store)
    assert finished >= 1
    # the rerun reuses what finished and completes the same run
    res = rank(zoo, "digits", per_class=10, metrics=METRICS, workers=1, settings=settings, details=True,
               use_cache_path=False)
    assert int((res.table["cached_stages"] > 0).sum()) >= finished
    runs = mlflow.search_runs(experiment_names=[settings.experiment], filter_string="tags.`zoorank.kind` = 'ranking'")
    assert runs["status"].tolist() == ["FINISHED"] and runs["run_id"].iloc[0] == res.run_id
