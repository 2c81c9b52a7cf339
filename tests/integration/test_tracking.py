"""Tracker against a real SQLite MLflow store: rankings, nested pairs, tables, idempotency, bad URIs."""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zoorank.config import Settings, sqlite_uri
from zoorank.reporting.charts import ranking_chart
from zoorank.storage.tracking import (
    RankingNotFound,
    Tracker,
    TrackingError,
    TrackingUnavailable,
    _pair_key,
    logical_key,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tracker(tmp_path_factory) -> Tracker:
    home = tmp_path_factory.mktemp("mlflow")
    return Tracker(sqlite_uri(home / "mlflow.db"), "zoorank-test", home / "artifacts")


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["mobilenet_v2", "cnn_mnist", "efficientnet_lite0"],
            "dataset": ["fashion_mnist"] * 3,
            "lead": [-0.123456789012345, -1.5, 0.25],
            "logme": [1.0, float("nan"), 2.0 / 3.0],
            "rank": [2, 3, 1],
            "time_s": [1.5, 0.25, 3.0],
        }
    )


def _log_ranking(tracker: Tracker, name: str, key: str | None = None):
    run = tracker.start_ranking(
        name, params={"zoo": "tiny", "per_class": 10, "metrics": ["lead", "logme"], "svm": {"C": 1.0}},
        tags={"purpose": "test"}, logical_key=key,
    )
    with run:
        for model, lead in [("mobilenet_v2", -0.12), ("cnn_mnist", -1.5)]:
            run.log_pair(
                model, "fashion_mnist",
                params={"feature_dim": 1280 if model == "mobilenet_v2" else 128, "svm": {"C": 1.0}},
                scores={"lead": lead, "logme": float("nan"), "leep": np.float32(-2.5)},
                timings={"features": 1.25, "svm_logits": 0.5, "scoring": 0.01},
                cache_hits={"features": True, "svm_logits": False},
                tags={"zoo": "tiny"},
            )
        run.log_table(_table(), chart=ranking_chart())
    return run


def test_ranking_with_two_pairs_is_searchable(tracker, tmp_path):
    run = _log_ranking(tracker, "rank-1")
    parent = tracker.get_run(run.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["zoorank.kind"] == "ranking"
    assert parent.data.params["svm.C"] == "1.0"
    assert parent.data.params["metrics"] == '["lead", "logme"]'
    assert parent.info.artifact_uri.startswith((tmp_path.parent.as_uri(), "file://"))

    # the global mlflow API finds each pair by its tags
    import mlflow

    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracker.tracking_uri)
    try:
        for model in ("mobilenet_v2", "cnn_mnist"):
            df = mlflow.search_runs(
                experiment_names=["zoorank-test"],
                filter_string=f"tags.`zoorank.model` = '{model}' and tags.`zoorank.dataset` = 'fashion_mnist'",
            )
            assert len(df) == 1
            row = df.iloc[0]
            assert row["tags.zoorank.kind"] == "pair"
            assert row["tags.mlflow.parentRunId"] == run.run_id
            assert row["status"] == "FINISHED"
            assert math.isnan(row["metrics.score.logme"])
            assert row["metrics.score.leep"] == -2.5
            assert row["metrics.time.features"] == 1.25
            assert row["metrics.cache_hit.features"] == 1.0 and row["metrics.cache_hit.svm_logits"] == 0.0
            assert row["metrics.cache_hits"] == 1.0
    finally:
        mlflow.set_tracking_uri(old)

    pairs = tracker.find_pairs(parent_run_id=run.run_id)
    assert sorted(p.data.tags["zoorank.model"] for p in pairs) == ["cnn_mnist", "mobilenet_v2"]
    (only,) = tracker.find_pairs(model_id="cnn_mnist", parent_run_id=run.run_id)
    assert only.data.metrics["score.lead"] == -1.5
    assert only.data.params["feature_dim"] == "128"
    frame = tracker.pairs_frame(run.run_id)
    assert list(frame["model"]) == ["cnn_mnist", "mobilenet_v2"]
    assert set(frame["status"]) == {"FINISHED"}


def test_ranking_table_round_trip(tracker):
    run = _log_ranking(tracker, "rank-table")
    assert tracker.list_rankings(run.run_id) == ["ranking"]
    arts = {f.path for f in tracker.client.list_artifacts(run.run_id, "rankings")}
    assert arts == {"rankings/ranking.csv", "rankings/ranking.png"}
    back = tracker.find_ranking(run.run_id)
    pd.testing.assert_frame_equal(back, _table(), check_dtype=False)
    assert back["lead"].iloc[0] == -0.123456789012345  # exact float round trip

    # a second table on the same run: both come back, labelled
    tracker.log_ranking_table(run.run_id, _table().head(2).assign(dataset="animal_mnist"), name="animal_mnist")
    assert tracker.list_rankings(run.run_id) == ["animal_mnist", "ranking"]
    both = tracker.find_ranking(run.run_id)
    assert list(both.columns[:2]) == ["table", "model"] and len(both) == 5
    assert len(tracker.find_ranking(run.run_id, "animal_mnist")) == 2
    with pytest.raises(RankingNotFound, match="no ranking table 'nope'"):
        tracker.find_ranking(run.run_id, "nope")
    with pytest.raises(TrackingError, match="0123456789abcdef"):
        tracker.find_ranking("0123456789abcdef")


def test_png_plot_is_a_png(tracker, tmp_path):
    run = _log_ranking(tracker, "rank-png")
    local = tracker.client.download_artifacts(run.run_id, "rankings/ranking.png", dst_path=str(tmp_path))
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_table_without_numbers_or_chart_logs_only_its_csv(tracker):
    with tracker.start_ranking("rank-no-chart") as run:
        words = pd.DataFrame({"model": ["a", "b"], "note": ["x", "y"]})
        assert run.log_table(words, name="words", chart=ranking_chart()) == ["rankings/words.csv"]
        assert run.log_table(_table(), name="plain") == ["rankings/plain.csv"]  # no chart asked for


def test_logical_key_reuses_the_parent_and_pairs(tracker):
    key = logical_key(zoo="tiny", datasets=["fashion_mnist"], per_class=10)
    assert key == logical_key(per_class=10, datasets=["fashion_mnist"], zoo="tiny")
    first = _log_ranking(tracker, "rank-keyed", key)
    assert not first.reused
    second = _log_ranking(tracker, "rank-keyed", key)  # the rerun
    assert second.reused and second.was_finished and second.run_id == first.run_id
    assert tracker.find_run_by_key(key).info.run_id == first.run_id
    assert len(tracker.find_pairs(parent_run_id=first.run_id)) == 2  # no duplicate pairs
    forced = tracker.start_ranking("rank-keyed", logical_key=key, reuse=False)
    forced.finish()
    assert forced.run_id != first.run_id
    assert tracker.find_run_by_key("f" * 24) is None


def test_crashed_ranking_is_resumed_not_duplicated(tracker):
    key = logical_key(case="crash")
    with pytest.raises(RuntimeError):
        with tracker.start_ranking("rank-crash", {"a": 1}, logical_key=key) as run:
            run.log_pair("m1", "d", scores={"lead": 1.0})
            raise RuntimeError("killed")
    assert tracker.get_run(run.run_id).info.status == "FAILED"
    # a run left RUNNING by kill -9 looks the same to the rerun: it is reopened and completed
    with tracker.start_ranking("rank-crash", {"a": 1, "b": 2}, logical_key=key) as again:
        assert again.reused and not again.was_finished and again.run_id == run.run_id
        assert tracker.get_run(run.run_id).info.status == "RUNNING"
        first_pair = again.log_pair("m1", "d", scores={"lead": 1.0})
        again.log_pair("m2", "d", scores={"lead": 2.0})
    final = tracker.get_run(run.run_id)
    assert final.info.status == "FINISHED" and final.data.params == {"a": "1", "b": "2"}
    pairs = tracker.find_pairs(parent_run_id=run.run_id)
    assert len(pairs) == 2 and first_pair in {p.info.run_id for p in pairs}


def test_unfinished_pair_run_is_completed(tracker):
    with tracker.start_ranking("rank-pair-crash") as run:
        # simulate a logger killed after creating the pair run
        half = tracker.client.create_run(
            tracker.experiment_id, run_name="m @ d",
            tags={"zoorank.kind": "pair", "zoorank.model": "m", "zoorank.dataset": "d",
                  "zoorank.pair_key": _pair_key("m", "d"),
                  "mlflow.parentRunId": run.run_id},
        )
        rid = run.log_pair("m", "d", params={"p": 1}, scores={"lead": 0.5})
    assert rid == half.info.run_id
    done = tracker.get_run(rid)
    assert done.info.status == "FINISHED" and done.data.metrics["score.lead"] == 0.5


def test_ranking_key_is_pinned():
    # the logical key of a ranking finds its MLflow parent run again: its value must not change
    from zoorank.storage.tracking import ranking_key

    subset = {"split": "train", "per_class": 20, "seed": 0}
    key = ranking_key(["i2", "i1"], ["f1"], subset, ["logme", "lead"], {"C": 1.0})
    assert key == "e9c2bc72186d39cab1ee9488"  # the value of pipeline.pairs.logical_key at commit 953725b
    assert ranking_key(["i1", "i2"], ["f1"], subset, ["lead", "logme"], {"C": 1.0}) == key  # sets, not lists
    assert ranking_key(["i1", "i2"], ["f1"], {**subset, "seed": 1}, ["lead", "logme"], {"C": 1.0}) != key


def test_find_or_create_run_by_tags(tracker):
    tags = {"zoorank.kind": "probe-test", "zoorank.logical_key": logical_key(case="tagged")}
    first = tracker.find_or_create_run(tags, run_name="tagged", params={"grid": [1, 2], "b": {"c": 3}})
    assert first.created and not first.finished
    assert dict(first.params) == {"grid": "[1, 2]", "b.c": "3"}
    # a nested run identified by its parent's id and its own tags
    child_tags = {"zoorank.kind": "probe-child", "mlflow.parentRunId": first.run_id, "zoorank.model": "m'1"}
    child = tracker.find_or_create_run(child_tags, run_name="child")
    assert child.created and tracker.get_run(child.run_id).data.tags["mlflow.parentRunId"] == first.run_id
    # an unfinished run with the same tags is found (not duplicated), reopened, missing params added
    tracker.end_run(first.run_id, "FAILED")
    again = tracker.find_or_create_run(tags, run_name="tagged", params={"grid": [9], "new": 1}, reopen=True)
    assert (again.run_id, again.created, again.status) == (first.run_id, False, "RUNNING")
    run = tracker.get_run(first.run_id)
    assert run.info.status == "RUNNING"
    assert run.data.params == {"grid": "[1, 2]", "b.c": "3", "new": "1"}  # grid kept, not overwritten
    tracker.log_run(first.run_id, metrics={"acc": np.float32(0.5), "skip": None}, tags={"note": "x"})
    assert tracker.log_curve(first.run_id, "loss", [(0, 2.0), (1, float("nan")), (2, 1.0)]) == 2
    tracker.end_run(first.run_id)
    tracker.end_run(first.run_id, "FAILED")  # a failure never overwrites FINISHED
    done = tracker.find_or_create_run(tags, run_name="tagged", params={"other": 1})
    assert (done.run_id, done.created, done.finished) == (first.run_id, False, True)
    run = tracker.get_run(first.run_id)
    assert run.info.status == "FINISHED" and "other" not in run.data.params  # a finished run is untouched
    assert run.data.metrics["acc"] == 0.5 and run.data.tags["note"] == "x"
    history = tracker.client.get_metric_history(first.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 2.0), (2, 1.0)]
    assert [r.info.run_id for r in tracker.find_runs(tags)] == [first.run_id]
    with pytest.raises(ValueError, match="at least one tag"):
        tracker.find_runs({})


def _concurrent_logger(uri: str, artifacts: str, barrier, key: str, experiment: str) -> None:
    t = Tracker(uri, experiment, artifacts)
    barrier.wait(120)
    with t.start_ranking("conc", logical_key=key) as run:
        for m in ("a", "b", "c"):
            run.log_pair(m, "d", scores={"lead": 1.0})


def _run_two_loggers(uri: str, artifacts: Path, experiment: str) -> Tracker:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_concurrent_logger, args=(uri, str(artifacts), barrier, "k" * 24, experiment))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    t = Tracker(uri, experiment, artifacts)
    parents = t._search("tags.`zoorank.kind` = 'ranking'")
    assert len(parents) == 1  # no duplicate parent for one logical ranking
    assert len(t.find_pairs(parent_run_id=parents[0].info.run_id)) == 3  # nor duplicate pairs
    return t


def test_two_processes_share_one_parent(tracker, tmp_path):
    # the database exists already (the usual case): only runs are raced for
    _run_two_loggers(tracker.tracking_uri, tmp_path / "art", "zoorank-conc")


@pytest.mark.slow
def test_two_processes_on_a_fresh_database(tmp_path):
    # both processes find no database: MLflow's schema migrations must not race (they did
    # before Tracker serialised the first use: "table logged_models already exists")
    _run_two_loggers(sqlite_uri(tmp_path / "mlflow.db"), tmp_path / "art", "zoorank-fresh")


def test_unreachable_http_uri_fails_fast_and_names_it():
    uri = "http://127.0.0.1:9"
    t0 = time.monotonic()
    with pytest.raises(TrackingUnavailable) as err:
        Tracker(uri, "zoorank-test")
    assert time.monotonic() - t0 < 10
    assert uri in str(err.value)


def test_unusable_sqlite_path_names_the_uri(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    uri = sqlite_uri(blocker / "sub" / "mlflow.db")
    with pytest.raises(TrackingUnavailable) as err:
        Tracker(uri, "zoorank-test", tmp_path / "art")
    assert uri in str(err.value)


def test_bad_metric_values_are_named(tracker):
    with tracker.start_ranking("rank-bad") as run:
        with pytest.raises(TypeError, match="score.lead"):
            run.log_pair("m", "d", scores={"lead": "high"})


def test_tracker_from_default_settings(tmp_path):
    settings = Settings.from_env(env={}, home=tmp_path / "home")
    assert settings.tracking_uri == "sqlite:///" + str(tmp_path / "home" / "mlflow.db")
    t = Tracker.from_settings(settings)
    exp = t.client.get_experiment(t.experiment_id)
    assert exp.name == "zoorank"
    assert exp.artifact_location == (tmp_path / "home" / "artifacts" / "zoorank").as_uri()
    assert (tmp_path / "home" / "mlflow.db").is_file()
    assert "mlflow ui --backend-store-uri" in t.ui_command()
