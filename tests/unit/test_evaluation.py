"""Evaluation measures against scipy and an independent O(n^2) weighted tau."""
import math

import numpy as np
import pytest
from scipy import stats

from zoorank.metrics.evaluation import (evaluate_ranking, kendall_tau, pearson, top_k_regret,
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
