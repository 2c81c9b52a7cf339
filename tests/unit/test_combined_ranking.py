"""The combined ranking as a ranking gets it (issue 15): nested leave-one-out inputs, the combination
methods, the table column and its notes (zoorank.reporting.combined), the history loaded from
shipped and user ground truth (zoorank.pipeline.history), and the tie set on two equal models."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import weightedtau

from zoorank.metrics import combine
from zoorank.pipeline import history as hist_mod
from zoorank.reporting.combined import add_combined
from zoorank.reporting.ties import top_tie_set

METRICS = ["m1", "m2", "m3"]


def synthetic(n_datasets=6, n_models=10, seed=0):
    """Truth = 2 m1 + m2 (+ a model effect, so history_mean carries signal); m3 is noise.
    Returns (long metric scores, accuracy history)."""
    rng = np.random.default_rng(seed)
    effect = rng.standard_normal(n_models)
    scores, acc = [], []
    for d in range(n_datasets):
        m1, m2, m3 = rng.standard_normal((3, n_models))
        truth = 2.0 * m1 + m2 + 0.5 * effect
        scale = 10.0 ** rng.uniform(-2, 2, size=3)
        for i in range(n_models):
            for name, v in zip(METRICS, (scale[0] * m1[i], scale[1] * m2[i] + 5.0, scale[2] * m3[i])):
                scores.append({"dataset": f"d{d}", "model": f"x{i}", "metric": name, "score": v})
            acc.append({"dataset": f"d{d}", "model": f"x{i}", "accuracy": 0.5 + 0.05 * truth[i]})
    return pd.DataFrame(scores), pd.DataFrame(acc)


def history_of(scores, acc, overridden=None):
    a = acc.assign(source="shipped", time=0.0)
    return hist_mod.History(a, scores, overridden if overridden is not None else a.iloc[:0], ["test"])


def ranking_table(scores, dataset):
    wide = scores[scores["dataset"] == dataset].pivot(index="model", columns="metric", values="score")
    return wide.reset_index().assign(dataset=dataset)[["dataset", "model", *METRICS]]


def tau_on(table, acc, dataset, column="combined"):
    truth = acc[acc["dataset"] == dataset].set_index("model")["accuracy"]
    t = table.set_index("model")
    return weightedtau(t[column].to_numpy(float), truth.reindex(t.index).to_numpy(float))[0]


@pytest.mark.parametrize("method", ["pairwise", "pairwise_z", "stacking"])
def test_learned_methods_recover_the_order_better_than_any_single_metric(method):
    """30 models (weighted tau on 10 is too noisy to compare rankers on one dataset)."""
    scores, acc = synthetic(n_models=30)
    table = ranking_table(scores, "d0")
    out, info, notes = add_combined(table, METRICS, history_of(scores, acc), method=method)
    assert info["d0"]["method"] == method and "d0" not in info["d0"]["fitted_on"]
    tau = tau_on(out, acc, "d0")
    singles = [tau_on(out, acc, "d0", m) for m in [*METRICS, "history_mean"]]
    assert tau > max(singles) + 0.1
    w = info["d0"]["weights"]
    assert w["m1"] > w["m2"] > abs(w["m3"])


def test_pairwise_cv_picks_a_strength_from_the_grid_and_says_so():
    scores, acc = synthetic()
    train = combine.training_inputs(scores, acc, exclude="d0", metrics=METRICS)
    comb = combine.fit_pairwise_cv(train, acc, [*METRICS, *combine.PRIORS], exclude="d0")
    assert "chosen by inner leave-one-dataset-out" in comb.note
    assert any(f"L2 {g:g} " in comb.note + " " for g in combine.L2_GRID)


def test_no_leakage_from_the_ranked_dataset_into_features_or_weights():
    """A perfect signal available only from the ranked dataset (its own accuracies, planted both as
    a metric and through history_mean) changes nothing: the combined column is the same when the
    ranked dataset's accuracies are replaced by anything else."""
    scores, acc = synthetic(seed=3)
    oracle = acc.rename(columns={"accuracy": "score"}).assign(metric="oracle")
    rng = np.random.default_rng(1)
    oracle.loc[oracle["dataset"] != "d0", "score"] = rng.standard_normal((oracle["dataset"] != "d0").sum())
    scores = pd.concat([scores, oracle[["dataset", "model", "metric", "score"]]], ignore_index=True)
    metrics = [*METRICS, "oracle"]
    wide = scores[scores["dataset"] == "d0"].pivot(index="model", columns="metric", values="score")
    table = wide.reset_index().assign(dataset="d0")[["dataset", "model", *metrics]]
    poisoned = acc.copy()
    poisoned.loc[poisoned["dataset"] == "d0", "accuracy"] = rng.uniform(size=(poisoned["dataset"] == "d0").sum())
    a, ia, _ = add_combined(table, metrics, history_of(scores, acc))
    b, ib, _ = add_combined(table, metrics, history_of(scores, poisoned))
    np.testing.assert_allclose(a["combined"], b["combined"], rtol=1e-9, atol=1e-12)
    assert ia["d0"]["weights"] == pytest.approx(ib["d0"]["weights"], rel=1e-9, abs=1e-12)
    assert abs(ia["d0"]["weights"]["oracle"]) < 0.25 * ia["d0"]["weights"]["m1"]
    # training features: history_mean of a training dataset never averages that dataset or d0
    train = combine.training_inputs(scores, acc, exclude="d0", metrics=metrics)
    others = acc[~acc["dataset"].isin(["d0", "d1"])]
    z = combine.standardise_frame(others.rename(columns={"accuracy": "a"}), ["a"], "zscore")
    expected = z.groupby("model")["a"].mean()
    got = train[train["dataset"] == "d1"].set_index("model")["history_mean"]
    np.testing.assert_allclose(got.to_numpy(), expected.reindex(got.index).to_numpy(), rtol=1e-12)


def test_empty_history_keeps_lead_and_says_so():
    scores, _ = synthetic(n_datasets=1)
    table = ranking_table(scores, "d0")
    for history in (None, hist_mod.empty_history()):
        out, info, notes = add_combined(table, METRICS, history)
        assert "combined" not in out and info["d0"]["method"] == "none"
        assert "no ground-truth history" in notes["d0"][0] and "LEAD" in notes["d0"][0]
    # only the ranked dataset in the history: it is never used for itself
    _, acc = synthetic(n_datasets=1)
    out, info, notes = add_combined(table, METRICS, history_of(scores, acc))
    assert "combined" not in out and "never used to rank d0" in notes["d0"][0]


def test_history_sharing_no_model_uses_learned_metric_weights_and_says_so():
    scores, acc = synthetic(n_models=30)
    renamed = scores[scores["dataset"] == "d0"].assign(model=lambda f: "new_" + f["model"])
    table = ranking_table(pd.concat([scores, renamed]), "d0")
    table = table[table["model"].str.startswith("new_")]
    history = history_of(scores[scores["dataset"] != "d0"], acc[acc["dataset"] != "d0"])
    out, info, notes = add_combined(table, METRICS, history)
    assert any("shares no model" in n for n in notes["d0"])
    assert out["history_mean"].isna().all()
    same = out.assign(model=out["model"].str[4:])
    assert tau_on(same, acc, "d0") > max(tau_on(same, acc, "d0", m) for m in METRICS)


def test_a_model_new_to_the_history_gets_a_metric_only_score_and_is_named():
    scores, acc = synthetic()
    acc = acc[~((acc["model"] == "x3") & (acc["dataset"] != "d0"))]        # x3 never fine-tuned elsewhere
    out, info, notes = add_combined(ranking_table(scores, "d0"), METRICS, history_of(scores, acc))
    assert info["d0"]["new_to_history"] == ["x3"]
    assert any("new to the history: x3" in n and "metric scores" in n for n in notes["d0"])
    row = out.set_index("model").loc["x3"]
    assert np.isnan(row["history_mean"]) and np.isfinite(row["combined"])


def test_one_dataset_history_is_learned_from_and_flagged():
    scores, acc = synthetic(n_datasets=2)
    out, info, notes = add_combined(ranking_table(scores, "d0"), METRICS, history_of(scores, acc))
    assert info["d0"]["fitted_on"] == ["d1"]
    assert any("learned from one dataset only" in n for n in notes["d0"])
    assert np.isfinite(out["combined"]).all()


def test_expected_top1_regret_is_reported_in_accuracy_points():
    scores, acc = synthetic()
    out, info, notes = add_combined(ranking_table(scores, "d0"), METRICS, history_of(scores, acc))
    r = info["d0"]["expected_top1_regret"]
    assert 0.0 <= r <= float(acc["accuracy"].max() - acc["accuracy"].min())
    assert info["d0"]["regret_datasets"] == 5
    assert any(f"{100 * r:.1f} accuracy points" in n for n in notes["d0"])


def test_tie_set_contains_the_true_best_of_two_equal_models():
    """Two models whose per-image scores come from the same distribution (the true best is a tie
    between them) and three clearly worse ones: the tie set holds both equal models."""
    rng = np.random.default_rng(0)
    n = 200
    scores = {"a": rng.normal(0.0, 1.0, n), "b": rng.normal(0.0, 1.0, n)}
    scores.update({f"w{i}": rng.normal(-1.0 - i, 1.0, n) for i in range(3)})
    tie = top_tie_set(scores, n_boot=2000, seed=1)
    assert set(tie.models) == {"a", "b"}
    assert tie.share["a"] + tie.share["b"] == pytest.approx(1.0)


# --- history loading -----------------------------------------------------------------------------

def _records(tmp_path, n_pairs=None):
    """A trials.jsonl made of the first pairs of the shipped records (real recipe values)."""
    src = hist_mod.SHIPPED_DIR / hist_mod.TRIALS_FILE
    lines = src.read_text().splitlines()
    pairs, keep = set(), []
    for line in lines:
        v = json.loads(line)["value"]
        pairs.add((v["dataset"], v["model"]))
        if n_pairs is None or len(pairs) <= n_pairs or (v["dataset"], v["model"]) in list(pairs)[:n_pairs]:
            keep.append(line)
    folder = tmp_path / "gt"
    folder.mkdir()
    (folder / hist_mod.TRIALS_FILE).write_text("\n".join(keep) + "\n")
    pd.DataFrame([{"dataset": "digits", "model": "cnn_usps", "metric": "lead", "score": -0.3}]).to_csv(
        folder / hist_mod.SCORES_FILE, index=False)
    return folder


@pytest.mark.skipif(not (hist_mod.SHIPPED_DIR / hist_mod.TRIALS_FILE).is_file(), reason="no shipped trials")
def test_history_from_shipped_records_and_user_store_newest_wins(tmp_path, monkeypatch):
    from zoorank.storage.arrays import ArrayStore

    folder = _records(tmp_path)
    monkeypatch.setenv("ZOORANK_HISTORY", str(folder))
    store = ArrayStore(tmp_path / "store.zarr")
    h = hist_mod.load_history(store)
    assert not h.empty and (h.accuracy["source"] == "shipped").all() and h.overridden.empty
    assert h.scores.to_dict("records") == [{"dataset": "digits", "model": "cnn_usps", "metric": "lead", "score": -0.3}]
    assert store.list_records(hist_mod.TABLE_STAGE), "the accuracy table is memoised in the store"
    # the user's store holds a contradictory record of one shipped pair: it wins and is listed
    from zoorank.compute.finetune import cpu_budget_for

    shipped = [(r["key"], r["value"]) for r in map(json.loads, (folder / hist_mod.TRIALS_FILE).read_text().splitlines())
               if r["key"].startswith("gt_trial/")]     # the file also keeps superseded runs: one of the protocol's
    key, value = next((k, v) for k, v in shipped if v["budget"] == cpu_budget_for(v["dataset"]).as_dict())
    mine = dict(value, test_top1=0.123, seed=0, budget=dict(value["budget"], steps=7))
    store.put_record("gt_trial/" + "f" * 24, mine)
    h2 = hist_mod.load_history(store)
    row = h2.accuracy[(h2.accuracy["dataset"] == value["dataset"]) & (h2.accuracy["model"] == value["model"])]
    assert len(row) == 1 and row["source"].item() == "your store" and row["accuracy"].item() == pytest.approx(0.123)
    assert len(h2.overridden) == 1 and h2.overridden["source"].item() == "shipped"
    assert "your store's ground-truth records" in h2.sources


@pytest.mark.skipif(not (hist_mod.SHIPPED_DIR / hist_mod.TRIALS_FILE).is_file(), reason="no shipped trials")
def test_shipped_history_is_the_shipped_protocol_only(tmp_path, monkeypatch):
    """The shipped file may keep superseded runs (digits at 80 steps): only the records of
    ``cpu_budget_for(dataset)`` are the shipped ground truth, one row per pair."""
    from zoorank.compute.finetune import cpu_budget_for
    from zoorank.storage.arrays import ArrayStore

    folder = _records(tmp_path)
    lines = (folder / hist_mod.TRIALS_FILE).read_text().splitlines()
    trials = [r for r in map(json.loads, lines) if r["key"].startswith("gt_trial/")]
    first = next(r for r in trials if r["value"]["budget"] == cpu_budget_for(r["value"]["dataset"]).as_dict())
    d, m = first["value"]["dataset"], first["value"]["model"]
    other = dict(first["value"], test_top1=0.001, val_top1=0.999, budget=dict(first["value"]["budget"], steps=3))
    lines.append(json.dumps({"key": "gt_trial/" + "e" * 24, "value": other}))
    (folder / hist_mod.TRIALS_FILE).write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("ZOORANK_HISTORY", str(folder))
    h = hist_mod.load_history(ArrayStore(tmp_path / "store.zarr"))
    row = h.accuracy[(h.accuracy["dataset"] == d) & (h.accuracy["model"] == m)]
    assert len(row) == 1 and row["accuracy"].item() > 0.01 and h.overridden.empty


def test_history_switched_off_or_pointed_at_a_bad_folder(tmp_path, monkeypatch):
    from zoorank.storage.arrays import ArrayStore

    monkeypatch.setenv("ZOORANK_HISTORY", "none")
    assert hist_mod.load_history(ArrayStore(tmp_path / "s.zarr")).empty
    monkeypatch.setenv("ZOORANK_HISTORY", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="ZOORANK_HISTORY=.*no trials.jsonl"):
        hist_mod.load_history(ArrayStore(tmp_path / "s.zarr"))


def test_ranking_scores_are_recorded_for_later_training(tmp_path, monkeypatch):
    from zoorank.storage.arrays import ArrayStore

    monkeypatch.setenv("ZOORANK_HISTORY", "none")
    store = ArrayStore(tmp_path / "s.zarr")
    table = pd.DataFrame({"dataset": ["d", "d"], "model": ["a", "b"], "lead": [0.1, np.nan], "seconds": [1, 2]})
    hist_mod.record_ranking_scores(store, table, ["lead", "logme"])
    hist_mod.record_ranking_scores(store, table, ["lead", "logme"])         # same scores: one record
    assert len(store.list_records(hist_mod.SCORES_STAGE)) == 1
    assert hist_mod.load_history(store).scores.to_dict("records") == [
        {"dataset": "d", "model": "a", "metric": "lead", "score": 0.1}]


def test_duplicate_rows_in_the_history_are_listed_in_the_notes():
    scores, acc = synthetic()
    over = acc.iloc[:2].assign(source="shipped", time=0.0)
    out, info, notes = add_combined(ranking_table(scores, "d0"), METRICS, history_of(scores, acc, over))
    assert any("2 duplicate or contradictory row(s) overridden" in n and "d0/x0" in n for n in notes["d0"])


def test_cards_from_specs_prefer_the_zoo_files_declared_fields():
    from zoorank.reporting.combined import cards_from_specs
    from zoorank.zoo import ModelSpec

    declared = ModelSpec(id="mine", source="torchvision:resnet18", source_accuracy=0.69758, parameters=11_689_512)
    acc, size = cards_from_specs(["mobilenet_v2", declared, "cnn_usps"])
    assert acc == {"mobilenet_v2": 0.71878, "mine": 0.69758}          # cnn_usps: its card states none
    assert size["mine"] == 11_689_512 and size["cnn_usps"] == 151_498


# --- the tie set of `combined` ----------------------------------------------------------------------

def _fit(scores, acc, exclude="d0"):
    train = combine.training_inputs(scores, acc, exclude=exclude, metrics=METRICS)
    columns = [*METRICS, *combine.PRIORS]
    return train, combine.fit_combination("pairwise_z", train, acc, columns, exclude=exclude), columns


def test_combined_tie_set_holds_two_models_with_equal_inputs_and_no_one_else():
    """Two models with identical inputs, both far ahead by the dominant metric: whatever the refit's
    weights, they score alike, so each comes first in half the refits; nobody else ever does."""
    scores, acc = synthetic(seed=5)
    train, comb, columns = _fit(scores, acc)
    table = ranking_table(scores, "d0").set_index("model")
    table.loc["x0", METRICS] = table.loc["x1", METRICS] = [50.0, 50.0, 0.0]
    target = pd.concat([table[METRICS], combine.prior_table(table.index, "d0", acc)], axis=1)
    target.loc["x1", combine.PRIORS] = target.loc["x0", combine.PRIORS].to_numpy()
    share = combine.refit_top_shares(train, acc, comb, target[columns], exclude="d0", n_boot=100)
    assert share["x0"] == pytest.approx(0.5) and share["x1"] == pytest.approx(0.5)
    assert sum(share.values()) == pytest.approx(1.0)


def test_combined_tie_set_splits_when_the_history_disagrees_and_is_in_the_table_info():
    """Model a is best by m1, b by m2. On a history where m1 drives accuracy on half the datasets and
    m2 on the other half, refits on resampled datasets disagree: both are in the tie set. On a history
    where m1 drives every dataset, a alone is."""
    rng = np.random.default_rng(0)

    def history(drivers):
        rows_s, rows_a = [], []
        for d, drive in enumerate(drivers):
            v = rng.standard_normal((2, 8))
            for i in range(8):
                rows_s += [{"dataset": f"h{d}", "model": f"x{i}", "metric": m, "score": v[k, i]}
                           for k, m in enumerate(["m1", "m2"])]
                rows_a.append({"dataset": f"h{d}", "model": f"x{i}", "accuracy": 0.5 + 0.05 * v[drive, i]})
        return pd.DataFrame(rows_s), pd.DataFrame(rows_a)

    ranked = pd.DataFrame({"dataset": "new", "model": ["a", "b", "c", "d"], "m1": [3.0, 0.0, -1.0, -2.0],
                           "m2": [0.0, 3.0, -1.0, -2.0]})
    s, a = history([0, 1] * 4)
    out, info, _ = add_combined(ranked, ["m1", "m2"], history_of(s, a))
    tie = info["new"]["tie"]
    assert set(tie["models"]) == {"a", "b"} and tie["score"] == "combined" and tie["unit"] == "history datasets"
    assert tie["n_images"] == 8 and 0.1 <= tie["share"]["a"] <= 0.9
    s, a = history([0] * 8)
    tie = add_combined(ranked, ["m1", "m2"], history_of(s, a))[1]["new"]["tie"]
    assert tie["models"] == ["a"] and tie["share"]["a"] > 0.9


def test_combined_tie_set_replaces_the_metric_one_in_the_output():
    from zoorank.orchestration.ranking_finish import combined_ties_first
    from zoorank.reporting.ties import TieSet

    lead = TieSet(["x", "y"], {"x": 0.6, "y": 0.4}, 1000, 0.1, 300, "lead")
    comb = TieSet(["y"], {"x": 0.02, "y": 0.98}, 200, 0.1, 5, "combined", "history datasets", "refits")
    ties, notes = combined_ties_first({"d": lead, "e": lead}, {"d": {"tie": comb.as_dict()}, "e": {"tie": None}}, {})
    assert ties["d"] == comb and ties["e"] == lead
    assert any(n.startswith("by lead alone, 2 model(s)") for n in notes["d"])
    assert "e" not in notes
