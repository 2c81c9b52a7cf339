"""Ground-truth flow: 2 tiny models x digits, 2 grid points, a few steps, through Prefect + MLflow."""
from __future__ import annotations

import pytest

from zoorank.finetune import Budget, FULL_GRID, pair_ground_truth, select_best

BUDGET = Budget(steps=3, batch_size=8, train_per_class=3, val_per_class=2, test_per_class=2, eval_every=2)
GRID = [(1e-2, 0.0), (1e-3, 1e-4)]


def test_full_grid_is_the_literature_grid():
    assert len(FULL_GRID) == 20 and (1e-1, 0.0) in FULL_GRID and (1e-4, 1e-3) in FULL_GRID


def test_selection_is_by_validation_and_averaged_over_seeds():
    trials = [dict(seed=0, lr=1, wd=0, val_top1=0.5, val_mean_class=0.5, test_top1=0.9, test_mean_class=0.9),
              dict(seed=0, lr=2, wd=0, val_top1=0.7, val_mean_class=0.7, test_top1=0.6, test_mean_class=0.6),
              dict(seed=1, lr=1, wd=0, val_top1=0.9, val_mean_class=0.9, test_top1=0.8, test_mean_class=0.7),
              dict(seed=1, lr=2, wd=0, val_top1=0.1, val_mean_class=0.1, test_top1=1.0, test_mean_class=1.0)]
    assert select_best(trials[:2])["lr"] == 2
    gt = pair_ground_truth(trials)
    assert gt["test_top1"] == pytest.approx((0.6 + 0.8) / 2)
    assert gt["n_seeds"] == 2


def test_ground_truth_flow_tracks_every_trial_and_resumes_from_cache(prefect_server, settings):
    from zoorank.flows.ground_truth import run_ground_truth
    from zoorank.storage.tracking import Tracker

    models = ["cnn_mnist", "cnn_usps"]
    df, run_id = run_ground_truth(models, "digits", grid=GRID, seeds=[0], budget=BUDGET, settings=settings,
                                  threads=1, return_run_id=True)
    assert sorted(df["model"]) == models and (df["n_trials"] == 2).all() and (df["cached_trials"] == 0).all()

    t = Tracker.from_settings(settings)
    trials = t._search("tags.`zoorank.kind` = 'gt_trial'")
    assert len(trials) == 4
    for r in trials:
        assert {"val_top1", "test_top1", "test_mean_class", "seconds"} <= set(r.data.metrics)
        assert r.data.params["lr"] in ("0.01", "0.001") and "budget.steps" in r.data.params
        curve = t.client.get_metric_history(r.info.run_id, "train_loss")
        assert [m.step for m in curve] == [1, 2, 3]          # learning curve as stepped metrics
    pairs = t._search("tags.`zoorank.kind` = 'gt_pair'")
    assert len(pairs) == 2 and all(p.data.tags["mlflow.parentRunId"] == run_id for p in pairs)
    for p in pairs:   # the pair's ground truth is its best-by-validation trial's test accuracy
        mine = [r for r in trials if r.data.tags["mlflow.parentRunId"] == p.info.run_id]
        assert len(mine) == 2
        best = max(mine, key=lambda r: r.data.metrics["val_top1"])
        ties = [r for r in mine if r.data.metrics["val_top1"] == best.data.metrics["val_top1"]]
        first = min(ties, key=lambda r: GRID.index((float(r.data.params["lr"]), float(r.data.params["wd"]))))
        assert p.data.metrics["gt.test_top1"] == pytest.approx(first.data.metrics["test_top1"])
        row = df[df["model"] == p.data.tags["zoorank.model"]].iloc[0]
        assert row["test_top1"] == pytest.approx(p.data.metrics["gt.test_top1"])

    # rerun: every trial from the store, no new MLflow runs, same ground truth
    df2 = run_ground_truth(models, "digits", grid=GRID, seeds=[0], budget=BUDGET, settings=settings, threads=1)
    assert (df2["cached_trials"] == 2).all()
    assert len(t._search("tags.`zoorank.kind` = 'gt_trial'")) == 4
    assert df2.set_index("model")["test_top1"].to_dict() == df.set_index("model")["test_top1"].to_dict()


@pytest.mark.slow
def test_finetune_is_deterministic_with_seed():
    from zoorank.data import load_dataset
    from zoorank.finetune import TrialParams, prepare_splits, run_trial
    from zoorank.zoo import load_model

    data = prepare_splits(load_dataset("digits"), BUDGET)
    a = run_trial(lambda: load_model("cnn_usps"), data, TrialParams(1e-2, 0.0, 3), BUDGET)
    b = run_trial(lambda: load_model("cnn_usps"), data, TrialParams(1e-2, 0.0, 3), BUDGET)
    assert a.train_loss == b.train_loss and a.test_top1 == b.test_top1
