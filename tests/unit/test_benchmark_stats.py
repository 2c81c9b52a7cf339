"""The benchmark's error bars (zoorank.reporting.benchmark_bootstrap): binomial resampling of a
pair's test images, regret, LEAD's paired win fraction, the compute ratio; hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from zoorank.metrics.evaluation import binomial_accuracy_draws
from zoorank.reporting import benchmark_bootstrap as bb


def _truth(rows):
    return pd.DataFrame(rows, columns=["dataset", "model", "accuracy", "n_test", "seed_accuracies"])


def test_binomial_draws_have_no_spread_at_p_0_or_1():
    rng = np.random.default_rng(0)
    assert np.all(binomial_accuracy_draws([1.0, 1.0, 1.0], 600, 500, rng) == 1.0)
    assert np.all(binomial_accuracy_draws([0.0], 1, 500, rng) == 0.0)
    # a mix of a perfect and a null seed: each seed fixed, so the mean is exactly 0.5 every time
    assert np.all(binomial_accuracy_draws([1.0, 0.0], 37, 500, rng) == 0.5)


def test_binomial_draws_known_mean_and_variance():
    # mean over S seeds of Binomial(n, p_s)/n: E = mean(p), Var = sum p_s (1 - p_s) / n / S^2
    p, n, n_boot = np.array([0.6, 0.8, 0.7]), 50, 40_000
    x = binomial_accuracy_draws(p, n, n_boot, np.random.default_rng(1))
    var = float(np.sum(p * (1 - p)) / n / p.size ** 2)
    assert abs(x.mean() - p.mean()) < 5 * math.sqrt(var / n_boot)
    # the sample variance of n_boot draws has relative SE ~ sqrt(2 / n_boot) (0.7%): 5 SE
    assert abs(x.var(ddof=1) / var - 1) < 5 * math.sqrt(2 / n_boot)


def test_binomial_draws_refuse_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        binomial_accuracy_draws([1.2], 10, 5, rng)
    with pytest.raises(ValueError, match="n_test must be >= 1"):
        binomial_accuracy_draws([0.5], 0, 5, rng)


def test_no_noise_gives_collapsed_intervals_and_hand_regret():
    # accuracies 0 / 1 only: no test-image noise; one dataset: no dataset noise -> CI = the value
    truth = _truth([("d", "a", 0.0, 100, [0.0]), ("d", "b", 1.0, 100, [1.0]), ("d", "c", 1.0, 100, [1.0]),
                    ("d", "e", 0.0, 100, [0.0])])
    scores = {"d": pd.DataFrame({"model": ["a", "b", "c", "e"], "lead": [4.0, 3.0, 2.0, 1.0],
                                 "knn": [1.0, 2.0, 3.0, 4.0]})}
    meas = bb.per_draw_measures(scores, truth, ["lead", "knn"], n_boot=200, seed=3)
    tabs = bb.interval_tables(meas)
    for m in ("lead", "knn"):
        assert tabs["tau"].loc[m, "lo"] == pytest.approx(tabs["tau"].loc[m, "mean"])
        assert tabs["tau"].loc[m, "hi"] == pytest.approx(tabs["tau"].loc[m, "mean"])
    # lead's top-1 pick is a (acc 0): regret 1; its top-3 holds b: 0. knn's top-1 is e: regret 1, top-3 holds c: 0
    assert tabs["regret"].loc["lead", "top1_mean"] == 1.0 and tabs["regret"].loc["lead", "top3_mean"] == 0.0
    assert tabs["regret"].loc["knn", "top1_mean"] == 1.0 and tabs["regret"].loc["knn", "top1_hi"] == 1.0


def test_regret_on_hand_table_with_noise_free_truth():
    truth = _truth([("d", m, a, 10, [a]) for m, a in zip("abcd", [0.0, 1.0, 1.0, 1.0])])
    # scores pick b first: regret 0; a metric picking a first loses 1.0 at top-1 and 0 at top-3
    scores = {"d": pd.DataFrame({"model": list("abcd"), "good": [0.0, 3.0, 2.0, 1.0], "bad": [9.0, 1.0, 2.0, 3.0]})}
    tabs = bb.interval_tables(bb.per_draw_measures(scores, truth, ["good", "bad"], n_boot=50))
    assert tabs["regret"].loc["good", ["top1_mean", "top3_mean"]].tolist() == [0.0, 0.0]
    assert tabs["regret"].loc["bad", ["top1_mean", "top3_mean"]].tolist() == [1.0, 0.0]


def test_paired_win_fraction_when_lead_dominates():
    # 3 datasets, 5 models with well separated accuracies (SE 0.016 at n = 600 against gaps of 0.15):
    # lead's scores follow the accuracies, the baseline's are reversed -> lead wins every draw
    rows, scores = [], {}
    acc = [0.3, 0.45, 0.6, 0.75, 0.9]
    for d in ("x", "y", "z"):
        rows += [(d, f"m{i}", a, 600, [a, a, a]) for i, a in enumerate(acc)]
        scores[d] = pd.DataFrame({"model": [f"m{i}" for i in range(5)], "lead": acc, "base": acc[::-1]})
    meas = bb.per_draw_measures(scores, _truth(rows), ["lead", "base"], n_boot=300, seed=0)
    paired = bb.interval_tables(meas)["paired"]
    assert paired.loc["base", "lead_wins"] == 1.0
    assert paired.loc["base", "diff"] == pytest.approx(2.0)       # tau 1 against tau -1
    assert paired.loc["base", "lo"] > 0
    text = bb.where_reference_loses(bb.interval_tables(meas), meas)
    assert text.startswith("lead ranks 1 of 2") and "below the best" not in text


def test_compute_ratio_on_hand_table():
    ranking = pd.DataFrame({"dataset": ["d", "d", "e"], "model": ["a", "b", "a"], "seconds": [2.0, 3.0, 1.0]})
    finetune = pd.DataFrame({"dataset": ["d", "d", "e", "e"], "model": ["a", "b", "a", "b"],
                             "trial_seconds": [300.0, 100.0, 90.0, 50.0], "probe_seconds": [50.0, 50.0, 10.0, 5.0]})
    out = bb.compute_ratio(ranking, finetune, {"d": 10.0, "e": 4.0})
    assert out.loc["d", "ratio_pair_seconds"] == pytest.approx(5.0 / 500.0)
    assert out.loc["d", "ratio_cpu"] == pytest.approx(10.0 / 500.0)
    assert out.loc["e", "n_pairs"] == 1 and out.loc["e", "finetune_seconds"] == 100.0   # e/b not ranked: left out
    assert out.loc["total", "ratio_pair_seconds"] == pytest.approx(6.0 / 600.0)
    assert out.loc["total", "ratio_cpu"] == pytest.approx(14.0 / 600.0)
    with pytest.raises(ValueError, match="no \\(dataset, model\\) pair"):
        bb.compute_ratio(ranking.assign(dataset="q"), finetune)
    # the literature-protocol projection: per-image trial cost x the full protocol's images
    full = bb.compute_ratio(ranking, finetune.assign(samples=[6400, 6400, 3200, 3200]), {"d": 10.0, "e": 4.0},
                            full_samples=64_000)
    assert full.loc["d", "full_seconds"] == pytest.approx((300.0 + 100.0) * 10)
    assert full.loc["e", "full_seconds"] == pytest.approx(90.0 * 20)
    assert full.loc["total", "ratio_cpu_full"] == pytest.approx(14.0 / (4000.0 + 1800.0))
    assert "ratio_cpu_full" not in out                  # no samples, no projection


def test_report_renders_error_bars_and_compute_ratio(tmp_path):
    from zoorank.reporting.benchmark_report import write_report
    from zoorank.reporting.benchmark_tables import evaluate_scores

    acc = [0.3, 0.45, 0.6, 0.75, 0.9]
    truth = _truth([("x", f"m{i}", a, 600, [a]) for i, a in enumerate(acc)])
    scores = {"x": pd.DataFrame({"model": [f"m{i}" for i in range(5)], "lead": acc[::-1], "knn": acc})}
    ev, notes = evaluate_scores(scores["x"], truth[["model", "accuracy"]], ["lead", "knn"])
    meas = bb.per_draw_measures(scores, truth, ["lead", "knn"], n_boot=50)
    tabs = bb.interval_tables(meas)
    result = {"datasets": ["x"], "metrics": ["lead", "knn"], "per_dataset": {"x": ev.to_dict("records")},
              "notes": {"x": notes}, "scores": {}, "truth": [], "low_data": [], "ablations": [],
              "bootstrap": {"finetune": {"tables": tabs, "loses": bb.where_reference_loses(tabs, meas)}},
              "compute_ratio": bb.compute_ratio(
                  pd.DataFrame({"dataset": ["x"], "model": ["m0"], "seconds": [1.0]}),
                  pd.DataFrame({"dataset": ["x"], "model": ["m0"], "trial_seconds": [150.0], "probe_seconds": [50.0]}),
                  {"x": 1.0})}
    md = (tmp_path / "report.md").read_text() if write_report(result, tmp_path) else ""
    assert "lead ranks 2 of 2" in md and "below the best metric on x (-1.000 against knn's 1.000)" in md
    assert "CPU time 0.50% (target <= 1%: met by CPU time)" in md
    paired = pd.read_csv(tmp_path / "tables" / "ci_paired_finetune.csv", index_col=0)
    assert paired.loc["knn", "lead_wins"] == 0.0 and paired.loc["knn", "diff"] == pytest.approx(-2.0)
