"""Evaluation measures against scipy and an independent O(n^2) weighted tau."""
import math

import numpy as np
import pytest
from scipy import stats

from zoorank.metrics.evaluation import (bootstrap_mean_ci, evaluate_ranking, kendall_tau,
                                        paired_bootstrap_difference, pearson, top_k_regret,
                                        weighted_tau)


def weighted_tau_by_definition(s, a):
    """Vigna (2015) additive hyperbolic weighted tau, averaged over both rankings (rank=True).

    Pair (i, j) weighs 1/(r_i+1) + 1/(r_j+1), r = position in decreasing order. No ties.
    """
    s = np.asarray(s, float)
    a = np.asarray(a, float)

    def one(key):
        n = len(s)
        rank = np.empty(n, int)
        rank[np.argsort(-key)] = np.arange(n)
        num = tx = ty = 0.0
        for i in range(n):
            for j in range(i + 1, n):
                w = 1 / (rank[i] + 1) + 1 / (rank[j] + 1)
                dx, dy = np.sign(s[i] - s[j]), np.sign(a[i] - a[j])
                num += w * dx * dy
                tx += w * dx * dx
                ty += w * dy * dy
        return num / math.sqrt(tx * ty)

    return 0.5 * (one(s) + one(a))


@pytest.mark.parametrize("seed", range(5))
def test_weighted_tau_matches_definition_and_scipy(seed):
    rng = np.random.default_rng(seed)
    s, a = rng.normal(size=11), rng.normal(size=11)
    assert weighted_tau(s, a) == pytest.approx(weighted_tau_by_definition(s, a), abs=1e-12)
    assert weighted_tau(s, a) == stats.weightedtau(s, a).statistic


def test_weighted_tau_published_ground_truth_order():
    # CIFAR-10 fine-tuned accuracies published in the SFDA/ETran repositories (docs/science.md, "Published numbers"); a perfect metric gets 1.
    acc = [96.12, 96.28, 97.39, 97.53, 96.45, 96.77, 97.02, 92.59, 94.74, 95.54, 96.18]
    assert weighted_tau(acc, acc) == pytest.approx(1.0)
    assert weighted_tau(-np.asarray(acc), acc) == pytest.approx(-1.0)


def test_weighted_tau_emphasises_the_top():
    acc = np.arange(10.0)
    swap_top = acc.copy(); swap_top[[9, 8]] = swap_top[[8, 9]]
    swap_bottom = acc.copy(); swap_bottom[[0, 1]] = swap_bottom[[1, 0]]
    assert weighted_tau(swap_top, acc) < weighted_tau(swap_bottom, acc) < 1.0
    # plain Kendall tau cannot tell the two apart
    assert kendall_tau(swap_top, acc) == pytest.approx(kendall_tau(swap_bottom, acc))


def test_kendall_and_pearson_against_scipy():
    rng = np.random.default_rng(1)
    s, a = rng.normal(size=8), rng.normal(size=8)
    assert kendall_tau(s, a) == pytest.approx(stats.kendalltau(s, a).statistic)
    assert pearson(s, a) == pytest.approx(np.corrcoef(s, a)[0, 1])
    assert pearson(np.ones(5), np.arange(5.0)) == 0.0


def test_top_k_regret_hand_computed():
    acc = [80.0, 90.0, 85.0, 70.0]
    scores = [0.9, 0.1, 0.5, 0.8]        # top-1 picks model 0 (80), top-3 includes model 2 (85)
    assert top_k_regret(scores, acc, 1) == pytest.approx(10.0)
    assert top_k_regret(scores, acc, 3) == pytest.approx(5.0)
    assert top_k_regret(scores, acc, 4) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        top_k_regret(scores, acc, 5)


def test_evaluate_ranking_keys_and_perfect_metric():
    acc = [1.0, 3.0, 2.0, 5.0]
    out = evaluate_ranking(acc, acc)
    assert out == {"weighted_tau": pytest.approx(1.0), "kendall_tau": pytest.approx(1.0),
                   "pearson": pytest.approx(1.0), "top1_regret": 0.0, "top3_regret": 0.0}


@pytest.mark.parametrize("scores, acc, msg", [
    ([1, 2], [1, 2], "at least 3 models"),
    ([1, 2, 3], [1, 2], "3 entries but accuracies has 2"),
    ([1, np.nan, 3], [1, 2, 3], "finite"),
])
def test_bad_input(scores, acc, msg):
    with pytest.raises(ValueError, match=msg):
        weighted_tau(scores, acc)


# --- bootstrap over datasets ----------------------------------------------------------------------

def exact_bootstrap_quantile(values, q):
    """The q-quantile of the exact bootstrap distribution of the mean, by enumerating all n^n
    resamples (small n only), together with the distance of q from the nearest CDF step."""
    import itertools
    v = np.asarray(values, float)
    means = np.sort([v[list(idx)].mean() for idx in itertools.product(range(v.size), repeat=v.size)])
    support, counts = np.unique(np.round(means, 12), return_counts=True)
    cdf = np.cumsum(counts) / counts.sum()
    k = int(np.searchsorted(cdf, q))
    return support[k], float(np.min(np.abs(cdf - q)))


def test_bootstrap_ci_of_constant_values_is_the_value():
    out = bootstrap_mean_ci([0.7, 0.7, 0.7, 0.7])
    assert out["mean"] == pytest.approx(0.7) and out["n"] == 4
    assert out["lo"] == pytest.approx(0.7, abs=1e-12) and out["hi"] == pytest.approx(0.7, abs=1e-12)


def test_bootstrap_ci_two_values_hand_computed():
    # resample means of [0, 1]: 0 (1/4), 0.5 (1/2), 1 (1/4): the 5% and 95% quantiles are 0 and 1
    out = bootstrap_mean_ci([0.0, 1.0], level=0.9, n_boot=20_000)
    assert (out["mean"], out["lo"], out["hi"]) == (0.5, 0.0, 1.0)
    # an 40% interval lies inside the central mass 0.5
    mid = bootstrap_mean_ci([0.0, 1.0], level=0.4, n_boot=20_000)
    assert (mid["lo"], mid["hi"]) == (0.5, 0.5)


@pytest.mark.parametrize("values", [[0.0, 1.0, 5.0], [0.0, 0.1, 0.5, 1.0]])
def test_bootstrap_ci_matches_exact_enumeration(values):
    out = bootstrap_mean_ci(values, level=0.9, n_boot=40_000, seed=3)
    for q, got in ((0.05, out["lo"]), (0.95, out["hi"])):
        exact, margin = exact_bootstrap_quantile(values, q)
        # the Monte-Carlo quantile falls on the exact step when q is > 6 binomial SDs from a step
        assert margin > 6 * math.sqrt(q * (1 - q) / 40_000)
        assert got == pytest.approx(exact, abs=1e-12)


def test_bootstrap_one_dataset_is_a_point_and_seed_is_reproducible():
    assert bootstrap_mean_ci([0.3]) == {"mean": 0.3, "lo": 0.3, "hi": 0.3, "n": 1}
    assert bootstrap_mean_ci([0.1, 0.5, 0.2], seed=7) == bootstrap_mean_ci([0.1, 0.5, 0.2], seed=7)


def test_paired_difference_cancels_what_datasets_share():
    rng = np.random.default_rng(0)
    b = rng.uniform(-1, 1, size=8)           # datasets differ wildly in difficulty ...
    a = b + 0.1                               # ... but a beats b by 0.1 on every one
    out = paired_bootstrap_difference(a, b)
    assert out["diff"] == pytest.approx(0.1)
    assert out["lo"] == pytest.approx(0.1, abs=1e-12) and out["hi"] == pytest.approx(0.1, abs=1e-12)
    assert out["p_not_better"] == 0.0 and out["n"] == 8
    # each method's own interval is wide: pairing is what makes the difference certain
    alone = bootstrap_mean_ci(a)
    assert alone["hi"] - alone["lo"] > 0.3


def test_paired_difference_is_antisymmetric_and_equals_bootstrap_of_differences():
    a = [0.8, 0.5, 0.9, 0.4, 0.6]
    b = [0.7, 0.6, 0.5, 0.45, 0.2]
    ab = paired_bootstrap_difference(a, b, seed=11)
    ba = paired_bootstrap_difference(b, a, seed=11)
    assert ba["diff"] == pytest.approx(-ab["diff"])
    assert ba["lo"] == pytest.approx(-ab["hi"], abs=1e-12) and ba["hi"] == pytest.approx(-ab["lo"], abs=1e-12)
    d = bootstrap_mean_ci(np.subtract(a, b), seed=11)
    assert (ab["lo"], ab["hi"]) == pytest.approx((d["lo"], d["hi"]), abs=1e-12)
    # hand-computed: differences 0.1, -0.1, 0.4, -0.05, 0.4; mean 0.15
    assert ab["diff"] == pytest.approx(0.15)
    assert 0.0 < ab["p_not_better"] < 0.5


@pytest.mark.parametrize("call, msg", [
    (lambda: bootstrap_mean_ci([]), "empty"),
    (lambda: bootstrap_mean_ci([0.1, np.nan]), "finite"),
    (lambda: bootstrap_mean_ci([0.1, 0.2], level=1.0), "level"),
    (lambda: bootstrap_mean_ci([0.1, 0.2], n_boot=0), "n_boot"),
    (lambda: paired_bootstrap_difference([0.1, 0.2], [0.1]), "one entry per dataset"),
])
def test_bootstrap_bad_input(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_top3_regret_hand_computed_with_tied_scores():
    acc = [0.50, 0.90, 0.70, 0.60, 0.80]
    scores = [3.0, 1.0, 3.0, 3.0, 2.0]      # a three-way tie at the top: model order breaks it
    assert top_k_regret(scores, acc, 1) == pytest.approx(0.40)   # model 0
    assert top_k_regret(scores, acc, 3) == pytest.approx(0.20)   # models 0, 2, 3 -> best 0.70
