"""Ground-truth flow (recipe ft-v2) through a real Prefect server, SQLite MLflow and a local Zarr store:
2 tiny models x digits, LP-FT, a 2-point lr grid at seed 0 then seed 1 at the chosen lr; records
export / import round-trips to the same ground truth and trains nothing; an all-diverged pair is
retried at lr / 10 and reported NaN, never 0."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from zoorank.compute.finetune import FULL_GRID, Budget

BUDGET = dataclasses.replace(Budget.cpu(), steps=4, batch_size=8, train_per_class=3, val_per_class=2,
                             test_per_class=2, eval_every=2)
GRID = [(1e-2, 0.0), (1e-3, 0.0)]
MODELS = ["cnn_mnist", "cnn_usps"]


def test_full_grid_is_the_literature_grid():
    assert len(FULL_GRID) == 20 and (1e-1, 0.0) in FULL_GRID and (1e-4, 1e-3) in FULL_GRID


def test_flow_tracks_curves_resumes_and_export_import_trains_nothing(prefect_server, settings, tmp_path):
    from zoorank.config import Settings
    from zoorank.orchestration.flows.ground_truth import run_ground_truth
    from zoorank.pipeline.ground_truth_records import export_records, ground_truth_table, import_records, read_records, store_records
    from zoorank.storage.arrays import ArrayStore
    from zoorank.storage.tracking import Tracker

    df, run_id = run_ground_truth(MODELS, "digits", grid=GRID, seeds=[0, 1], budget=BUDGET, settings=settings,
                                  threads=1, return_run_id=True)
    df = df.set_index("model")
    assert sorted(df.index) == MODELS and (df["n_trials"] == 3).all() and (df["cached_trials"] == 0).all()
    assert (df["n_seeds"] == 2).all() and (df["failed"] == "").all()

    t = Tracker.from_settings(settings)
    trials = t._search("tags.`zoorank.kind` = 'gt_trial'")
    assert len(trials) == 6
    for r in trials:
        assert {"val_top1", "test_top1", "test_mean_class", "seconds", "diverged"} <= set(r.data.metrics)
        assert "budget.steps" in r.data.params and r.data.params["budget.head_init"] == "probe"
        assert [m.step for m in t.client.get_metric_history(r.info.run_id, "train_loss")] == [1, 2, 3, 4]
        assert [m.step for m in t.client.get_metric_history(r.info.run_id, "val_top1_curve")] == [2, 4]
        assert len(t.client.get_metric_history(r.info.run_id, "grad_norm")) == 4
    pairs = t._search("tags.`zoorank.kind` = 'gt_pair'")
    assert len(pairs) == 2 and all(p.data.tags["mlflow.parentRunId"] == run_id for p in pairs)
    for p in pairs:   # seed 0 chooses the lr on validation; the pair's accuracy is the seeds' mean there
        mine = [r for r in trials if r.data.tags["mlflow.parentRunId"] == p.info.run_id]
        seed0 = sorted((r for r in mine if r.data.params["seed"] == "0"), key=lambda r: float(r.data.params["lr"]))
        best = max(seed0, key=lambda r: r.data.metrics["val_top1"])        # ties: the smaller lr (first)
        at_best = [r for r in mine if r.data.params["lr"] == best.data.params["lr"]]
        assert sorted(r.data.params["seed"] for r in at_best) == ["0", "1"]
        want = sum(r.data.metrics["test_top1"] for r in at_best) / 2
        assert p.data.metrics["gt.test_top1"] == pytest.approx(want)
        assert {"gt.se", "gt.lp_test_top1", "gt.converged", "gt.n_diverged"} <= set(p.data.metrics)
        assert df.loc[p.data.tags["zoorank.model"], "test_top1"] == pytest.approx(want)

    # the table from the store's records is the flow's ground truth
    table = ground_truth_table(store_records(ArrayStore(settings.store)), budget=BUDGET.as_dict()).set_index("model")
    assert table["test_top1"].to_dict() == pytest.approx(df["test_top1"].to_dict())
    assert (table["n_test"] == 20).all() and (table["n_diverged"] == 0).all()

    # rerun: every trial from the store, no new MLflow runs
    df2 = run_ground_truth(MODELS, "digits", grid=GRID, seeds=[0, 1], budget=BUDGET, settings=settings, threads=1)
    assert (df2["cached_trials"] == 3).all() and len(t._search("tags.`zoorank.kind` = 'gt_trial'")) == 6

    # export -> import into an empty store: same ground truth, nothing trained (no probe head either)
    records = tmp_path / "trials.jsonl"
    assert export_records(ArrayStore(settings.store), records) == 8          # 6 trials + 2 probes
    keys = [k for k, _ in read_records(records)]
    assert keys == sorted(keys) and all(json.loads(line)["key"] == k for line, k in
                                        zip(records.read_text().splitlines(), keys))
    other = Settings.from_env(env={}, home=tmp_path / "other")
    counts = import_records(ArrayStore(other.store), records)
    assert counts == {"imported": 8, "present": 0, "conflicts": 0}
    assert import_records(ArrayStore(other.store), records)["present"] == 8
    df3 = run_ground_truth(MODELS, "digits", grid=GRID, seeds=[0, 1], budget=BUDGET, settings=other, threads=1)
    assert (df3["cached_trials"] == 3).all()
    assert df3.set_index("model")["test_top1"].to_dict() == df["test_top1"].to_dict()
    assert ArrayStore(other.store).list_records("gt_trial") == ArrayStore(settings.store).list_records("gt_trial")
    assert not (other.store / "gt_probe_head").exists()


def test_bad_records_file_names_file_and_line(tmp_path):
    from zoorank.pipeline.ground_truth_records import read_records

    bad = tmp_path / "t.jsonl"
    bad.write_text('{"key": "gt_trial/abc", "value": {}}\n{"key": "features/x", "value": {}}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl:2"):
        read_records(bad)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_records(tmp_path / "nope.jsonl")


def test_all_diverged_pair_retries_smaller_lr_and_is_nan_not_zero(prefect_server, settings):
    from zoorank.orchestration.flows.ground_truth import MAX_LR_RETRIES, run_ground_truth
    from zoorank.storage.tracking import Tracker

    budget = dataclasses.replace(BUDGET, clip_norm=None, steps=3)
    df = run_ground_truth(["cnn_usps"], "digits", grid=[(1e7, 0.0)], seeds=[0, 1], budget=budget,
                          settings=settings, threads=1)
    row = df.iloc[0]
    assert row["n_trials"] == 1 + MAX_LR_RETRIES and row["n_diverged"] == 1 + MAX_LR_RETRIES
    assert math.isnan(row["test_top1"]) and row["n_seeds"] == 0 and row["lp_test_top1"] > 0.1
    lrs = sorted(float(r.data.params["lr"]) for r in
                 Tracker.from_settings(settings)._search("tags.`zoorank.kind` = 'gt_trial'"))
    assert lrs == pytest.approx([1e5, 1e6, 1e7])


def test_grid_extends_upward_when_its_largest_lr_wins(prefect_server, settings):
    """A one-point grid's lr always wins, so the first lr of ``lrs_up`` above it is trained at seed 0;
    an lr of ``lrs_up`` below the grid never is. The other seed runs at the chosen point only."""
    from zoorank.orchestration.flows.ground_truth import run_ground_truth
    from zoorank.storage.tracking import Tracker

    row = run_ground_truth(["cnn_usps"], "digits", grid=[(1e-4, 0.0)], seeds=[0, 1], budget=BUDGET,
                           settings=settings, threads=1, lrs_up=[1e-5, 3e-3]).iloc[0]
    runs = Tracker.from_settings(settings)._search("tags.`zoorank.kind` = 'gt_trial'")
    trained = sorted((float(r.data.params["lr"]), int(r.data.params["seed"])) for r in runs)
    best = float(row["best_lr"])
    assert best in (1e-4, 3e-3) and row["n_trials"] == 3
    assert trained == sorted([(1e-4, 0), (3e-3, 0), (best, 1)])
    parent, = Tracker.from_settings(settings)._search("tags.`zoorank.kind` = 'ground_truth'")
    assert json.loads(parent.data.params["lrs_up"]) == [1e-5, 3e-3]


def test_seeds_replace_diverged_ones_and_a_mostly_diverged_lr_is_dropped(prefect_server, settings):
    """Stored trials planted as diverged (a sustained blow-up the rule keeps) at the chosen lr: one
    lost seed is replaced by seed 3 (``max_seeds`` 4); when most seeds there are lost, the pair
    moves to the other lr and trains the planned seeds 1, 2 there. Nothing else is trained."""
    from zoorank.orchestration.flows.ground_truth import run_ground_truth
    from zoorank.storage.arrays import ArrayStore
    from zoorank.storage.tracking import Tracker

    kw = dict(grid=GRID, seeds=[0, 1, 2], budget=BUDGET, settings=settings, threads=1, max_seeds=4)
    first = run_ground_truth(["cnn_usps"], "digits", **kw).iloc[0]
    chosen, other = float(first["best_lr"]), next(lr for lr, _ in GRID if lr != float(first["best_lr"]))
    assert first["n_seeds"] == 3 and first["n_trials"] == 4
    store = ArrayStore(settings.store)
    at = {(float(v["lr"]), int(v["seed"])): k for k in store.list_records("gt_trial")
          for v in [store.get_record(k)]}

    def lose(seed):
        key = at[(chosen, seed)]
        store.put_record(key, store.get_record(key) | {
            "diverged": True, "val_top1": float("nan"), "test_top1": float("nan"),
            "diverged_reason": "loss blow-up at step 4 (...)", "train_loss": [[1, 0.3], [2, 6.0], [3, 6.0], [4, 6.0]]})

    def trained():
        runs = Tracker.from_settings(settings)._search("tags.`zoorank.kind` = 'gt_trial'")
        return sorted((float(r.data.params["lr"]), int(r.data.params["seed"])) for r in runs)

    before = trained()
    lose(2)
    row = run_ground_truth(["cnn_usps"], "digits", **kw).iloc[0]
    assert float(row["best_lr"]) == chosen and row["n_seeds"] == 3 and row["n_diverged"] == 1
    assert trained() == sorted(before + [(chosen, 3)])
    at[(chosen, 3)] = next(k for k in store.list_records("gt_trial") if k not in at.values())
    lose(3)           # 2 of 4 lost: not a majority, and the ceiling of 4 seeds is reached
    row = run_ground_truth(["cnn_usps"], "digits", **kw).iloc[0]
    assert float(row["best_lr"]) == chosen and row["n_seeds"] == 2 and row["n_trials"] == 5
    assert trained() == sorted(before + [(chosen, 3)])
    lose(1)           # 3 of 4 lost: the lr is dropped
    row = run_ground_truth(["cnn_usps"], "digits", **kw).iloc[0]
    assert float(row["best_lr"]) == other and row["n_seeds"] == 3 and row["n_diverged"] == 2
    assert trained() == sorted(before + [(chosen, 3), (other, 1), (other, 2)])
    # the table from every record agrees: seed 3 (diverged) counts there too
    from zoorank.pipeline.ground_truth_records import ground_truth_table, store_records
    table = ground_truth_table(store_records(store), budget=BUDGET.as_dict()).iloc[0]
    assert float(table["best_lr"]) == other and table["n_seeds"] == 3 and table["n_diverged"] == 3


@pytest.mark.slow
def test_finetune_is_deterministic_with_seed():
    from zoorank.data import load_dataset
    from zoorank.compute.finetune import TrialParams, prepare_splits, run_trial
    from zoorank.zoo import load_model

    data = prepare_splits(load_dataset("digits"), BUDGET)
    a = run_trial(lambda: load_model("cnn_usps"), data, TrialParams(1e-2, 0.0, 3), BUDGET)
    b = run_trial(lambda: load_model("cnn_usps"), data, TrialParams(1e-2, 0.0, 3), BUDGET)
    assert a.train_loss == b.train_loss and a.test_top1 == b.test_top1



def test_a_stored_blow_up_the_rule_no_longer_sees_is_trained_again(prefect_server, settings):
    """A record judged diverged by the mean-only rule (one spiking batch) is trained again on the next
    run and comes out as the same seeded trial; a sustained blow-up stays diverged, untouched."""
    from zoorank.orchestration.flows.ground_truth import run_ground_truth
    from zoorank.storage.arrays import ArrayStore

    budget = dataclasses.replace(BUDGET, steps=6)         # blow-up window 3, bar 1.5 ln 10 = 3.45
    kw = dict(grid=[(1e-2, 0.0)], seeds=[0], budget=budget, settings=settings, threads=1)
    assert run_ground_truth(["cnn_usps"], "digits", **kw).iloc[0]["n_diverged"] == 0
    store = ArrayStore(settings.store)
    (key,) = store.list_records("gt_trial")
    good = store.get_record(key)

    def plant(losses):
        store.put_record(key, good | {"diverged": True, "val_top1": float("nan"), "test_top1": float("nan"),
                                      "diverged_reason": f"loss blow-up at step {len(losses)} (...)",
                                      "train_loss": [[i + 1, v] for i, v in enumerate(losses)]})

    plant([0.3, 0.3, 6.0, 6.0, 6.0])                     # sustained: mean = median = 6 > 3.45
    row = run_ground_truth(["cnn_usps"], "digits", **kw).iloc[0]   # kept; the pair retries lr / 10
    assert row["n_diverged"] == 1 and store.get_record(key)["diverged"]
    store.delete_record(next(k for k in store.list_records("gt_trial") if k != key))   # the retry

    plant([0.3, 0.3, 0.3, 12.0, 0.3])                    # one spike: mean 4.2 > 3.45, median 0.3
    row = run_ground_truth(["cnn_usps"], "digits", **kw).iloc[0]
    assert row["cached_trials"] == 0 and row["n_diverged"] == 0
    again = store.get_record(key)
    assert not again["diverged"] and again["test_top1"] == good["test_top1"]
    assert again["train_loss"] == good["train_loss"]
