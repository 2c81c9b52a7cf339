"""Benchmark flow on a synthetic zoo whose true ranking is known by construction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from zoorank.orchestration.flows.benchmark import evaluate_scores

SEPARATIONS = {"m0": 0.3, "m1": 0.8, "m2": 1.5, "m3": 2.5, "m4": 4.0}   # better features -> higher accuracy
METRICS = ["lead", "logme", "knn"]


def synthetic_zoo(dataset="synth", n_per_class=12, k=3, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    y = np.repeat(np.arange(k), n_per_class)
    noise = rng.normal(size=(len(y), d))
    feats = {m: (centres[y] * s + noise, y) for m, s in SEPARATIONS.items()}
    truth = pd.DataFrame({"dataset": dataset, "model": list(SEPARATIONS),
                          "accuracy": np.linspace(0.5, 0.9, len(SEPARATIONS))})
    return {dataset: feats}, truth


def test_evaluate_scores_bad_input_is_reported():
    scores = pd.DataFrame({"model": ["a", "b", "c", "d"], "x": [1.0, 2.0, np.nan, 4.0], "y": [1, 2, 3, 4.0],
                           "failed": ["", "", "x: ValueError: too few samples", ""]})
    truth = pd.DataFrame({"model": ["a", "b", "c"], "accuracy": [0.1, 0.2, 0.3]})
    table, notes = evaluate_scores(scores, truth, ["x", "y"])
    assert "ground truth missing for 1 model(s): d" in notes[0]
    x = table.set_index("metric").loc["x"]
    assert x["n_models"] == 2 and np.isnan(x["weighted_tau"])
    assert "failed on 1 model(s): c (ValueError: too few samples)" in x["note"] and "tau undefined" in x["note"]
    yrow = table.set_index("metric").loc["y"]
    assert yrow["n_models"] == 3 and yrow["weighted_tau"] == pytest.approx(1.0)


def test_not_applicable_metric_is_said_so_not_called_a_failure():
    """A metric that needs source-task outputs, on a model without a head: "not applicable",
    with the reason; tau on the models that have a score."""
    scores = pd.DataFrame({"model": ["a", "b", "c", "d"], "leep": [0.1, np.nan, 0.3, 0.4],
                           "skipped": ["", "leep: the model has no source-task outputs", "", ""]})
    truth = pd.DataFrame({"model": ["a", "b", "c", "d"], "accuracy": [0.1, 0.2, 0.3, 0.4]})
    table, _ = evaluate_scores(scores, truth, ["leep"])
    row = table.set_index("metric").loc["leep"]
    assert row["note"] == "not applicable to 1 model(s) (the model has no source-task outputs): b"
    assert row["n_models"] == 3 and row["weighted_tau"] == pytest.approx(1.0)


def test_benchmark_flow_on_synthetic_zoo(prefect_server, settings, monkeypatch, tmp_path):
    from zoorank.orchestration.flows.benchmark import run_benchmark, summary_tables
    from zoorank.metrics import knn as knn_module

    feats, truth = synthetic_zoo()
    truth = truth[truth["model"] != "m2"]                         # ground truth missing for one pair
    real_knn = knn_module.knn_score

    def flaky_knn(features, labels, **kw):                          # a metric failing on one pair
        if np.isclose(np.abs(features).max(), np.abs(feats["synth"]["m4"][0]).max()):
            raise ValueError("synthetic failure on m4")
        return real_knn(features, labels, **kw)

    monkeypatch.setattr(knn_module, "knn_score", flaky_knn)
    res = run_benchmark(datasets="synth", ground_truth=truth, features=feats, metrics=METRICS, low_data=[2],
                        repeats=2, ablations=False, settings=settings, out_dir=tmp_path / "report", workers=2)
    per = pd.DataFrame(res["per_dataset"]["synth"]).set_index("metric")
    scores = pd.DataFrame(res["scores"]["synth"]).set_index("model")
    acc = truth.set_index("model")["accuracy"]
    # weighted tau through the flow == scipy's on the same numbers
    for m in ["lead", "logme"]:
        have = [x for x in acc.index if np.isfinite(scores.loc[x, m])]
        expect = stats.weightedtau(scores.loc[have, m].to_numpy(), acc.loc[have].to_numpy()).statistic
        assert per.loc[m, "weighted_tau"] == pytest.approx(expect)
        assert per.loc[m, "n_models"] == 4
    assert per.loc["lead", "weighted_tau"] > 0.5                    # known ranking recovered
    assert any("ground truth missing for 1 model(s): m2" in n for n in res["notes"]["synth"])
    assert per.loc["knn", "n_models"] == 3 and "synthetic failure on m4" in per.loc["knn", "note"]
    assert "synthetic failure on m4" in scores.loc["m4", "failed"]
    tables = summary_tables(res)
    assert {"N/K=2 mean", "N/K=2 std"} <= set(tables["low"].columns)
    report = res["report"]
    assert (tmp_path / "report" / "report.md").read_text().count("weighted") >= 1
    assert "tau_bars.png" in report["images"] and "scatter_synth.png" in report["images"]
    assert report["run_id"]

    # fewer than 3 models with ground truth: tau undefined, said so
    few = truth[truth["model"].isin(["m0", "m1"])]
    res2 = run_benchmark(datasets="synth", ground_truth=few, features=feats, metrics=["logme"], low_data=[],
                         ablations=False, settings=settings, track=False)
    row = pd.DataFrame(res2["per_dataset"]["synth"]).iloc[0]
    assert np.isnan(row["weighted_tau"]) and "tau undefined" in row["note"]


@pytest.mark.slow
def test_lead_ablations_on_synthetic_zoo(prefect_server, settings):
    from zoorank.metrics.registry import get_metric
    from zoorank.orchestration.flows.benchmark import run_benchmark, summary_tables

    LEAD_ABLATIONS = get_metric("lead").ablations

    feats, truth = synthetic_zoo()
    res = run_benchmark(datasets="synth", ground_truth=truth, features=feats, metrics=["lead"], low_data=[],
                        ablations=True, settings=settings, track=False)
    abl = summary_tables(res)["ablation"]
    assert len(abl) == len(LEAD_ABLATIONS)          # every variant listed (a saturated one has tau NaN:
    assert abl["synth"].notna().sum() >= len(LEAD_ABLATIONS) - 2   # constant scores, e.g. eta_t=100)
    per = pd.DataFrame(res["per_dataset"]["synth"]).set_index("metric")
    # the default variant (LEAD's default eta_t, every other option at its default) is the
    # full-data LEAD score
    from zoorank.metrics.lead.evolution import DEFAULT_ETA_T

    assert abl.loc[("eta_t", f"eta_t={DEFAULT_ETA_T:g}"), "synth"] == pytest.approx(per.loc["lead", "weighted_tau"])
