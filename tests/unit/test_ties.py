"""Tie set at the top (paired bootstrap over scored images) and per-image LEAD scores."""
from __future__ import annotations

import numpy as np
import pytest

from zoorank.reporting.ties import TieSet, lead_image_scores, top_tie_set


def test_clear_winner_is_alone_and_shares_sum_to_one():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, size=(3, 400))
    # means 0, -1, -2 with unit noise: the standard error of a mean difference is ~0.07,
    # so the winner is 14 standard errors ahead and wins every resample
    scores = {"a": noise[0], "b": noise[1] - 1.0, "c": noise[2] - 2.0}
    ties = top_tie_set(scores, n_boot=500, seed=1)
    assert ties.models == ["a"]
    assert ties.share["a"] == 1.0 and ties.share["b"] == 0.0
    assert sum(ties.share.values()) == pytest.approx(1.0)
    assert ties.n_images == 400 and ties.n_boot == 500


def test_indistinguishable_models_are_tied_and_identical_ones_split_evenly():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 300)
    same = top_tie_set({"a": x, "b": x.copy(), "c": x - 5}, n_boot=200)
    assert same.share["a"] == pytest.approx(0.5) and same.share["b"] == pytest.approx(0.5)
    assert set(same.models) == {"a", "b"}
    # two models with the same expected score and independent noise: each first in about half;
    # the Monte Carlo error of a share over 2000 resamples is <= 0.5/sqrt(2000) = 0.011, and the
    # observed gap of the two sample means moves it further, but never below 10% here
    y = rng.normal(0, 1, size=(2, 300))
    ties = top_tie_set({"p": y[0], "q": y[1]}, n_boot=2000)
    assert set(ties.models) == {"p", "q"}


def test_paired_resampling_cancels_shared_image_difficulty():
    """Image difficulty common to both models (a huge shared term) must not blur a small but
    consistent per-image advantage: resampling the same images for every model keeps it."""
    rng = np.random.default_rng(3)
    difficulty = rng.normal(0, 100, 500)
    scores = {"better": difficulty + 0.01, "worse": difficulty}
    assert top_tie_set(scores, n_boot=300).models == ["better"]


def test_two_model_share_matches_the_normal_approximation():
    """Independent formulation: for two models the share of A is P(mean of d* > 0) for the
    bootstrap mean of the per-image differences d, ~ Phi(mean(d) / (sd(d)/sqrt(N)))."""
    from scipy.stats import norm

    rng = np.random.default_rng(5)
    n = 400
    a, b = rng.normal(0.05, 1, n), rng.normal(0, 1, n)
    d = a - b
    expected = norm.cdf(d.mean() / (d.std(ddof=0) / np.sqrt(n)))
    ties = top_tie_set({"a": a, "b": b}, n_boot=4000, seed=2)
    # Monte Carlo std <= 0.5/sqrt(4000) = 0.008; 4 of them plus the CLT error at N=400 (< 0.02)
    assert ties.share["a"] == pytest.approx(expected, abs=0.05)


def test_non_finite_model_never_wins_and_bad_input_is_named():
    x = np.zeros(10)
    ties = top_tie_set({"nan": np.full(10, np.nan), "ok": x - 1})
    assert ties.models == ["ok"] and ties.share["nan"] == 0.0
    with pytest.raises(ValueError, match="sizes"):
        top_tie_set({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="n_boot"):
        top_tie_set({"a": x}, n_boot=0)
    with pytest.raises(ValueError, match="at least one"):
        top_tie_set({})


def test_round_trip():
    t = top_tie_set({"a": np.arange(5.0), "b": np.arange(5.0) - 1}, n_boot=50)
    assert TieSet.from_dict(t.as_dict()) == t


@pytest.mark.parametrize("apply_softmax, eta_t, scale", [(False, 1.0, "mean"), (False, 0.3, "max"),
                                                          (True, 2.0, "none")])
def test_lead_image_scores_average_to_lead_score(apply_softmax, eta_t, scale):
    from zoorank.metrics.lead import lead_score

    rng = np.random.default_rng(0)
    labels = np.repeat(np.array([3, 7, 9]), 8)
    feats = rng.normal(size=(24, 5))
    p = rng.dirichlet(np.ones(3), size=24)
    log_init = np.log(p) if apply_softmax else p
    ev = np.array([0.5, 2.0, 1.0])
    per_image = lead_image_scores(log_init, labels, ev, eta_t=eta_t, eigenvalue_scale=scale,
                                  apply_softmax=apply_softmax)
    assert per_image.shape == (24,)
    ref = lead_score(feats, labels, log_init=log_init, class_eigenvalues=ev, eta_t=eta_t,
                     eigenvalue_scale=scale, apply_softmax=apply_softmax)
    assert per_image.mean() == pytest.approx(ref, rel=1e-12, abs=1e-12)
