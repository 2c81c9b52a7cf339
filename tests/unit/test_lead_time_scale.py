"""LEAD's time scale and Eq. 7 (issue 13): the limits, one absolute eta*t for every model (a pair's
score depends on that pair only), the per-logit unit, and that the NTK input cannot be removed
silently. Small float64 cases, fast."""
from __future__ import annotations

import numpy as np
import pytest

from zoorank.metrics import lead
from zoorank.metrics.lead import evolve_logits, lead_score


def _probs(n=30, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True), y


def _score(p, y, ev, **kw):
    x = np.zeros((y.shape[0], 2))                      # features unused when both stages are given
    return lead_score(x, y, log_init=p, class_eigenvalues=ev, **kw)


def test_eq7_limits_zero_time_is_the_initial_logits_and_infinite_time_the_labels():
    p, y = _probs()
    ev = np.array([2e3, 5e3, 1e4])
    rows = np.arange(y.shape[0])
    assert _score(p, y, ev, eta_t=0.0) == pytest.approx(np.log(p[rows, y]).mean(), rel=1e-14)
    assert _score(p, y, ev, eta_t=np.inf) == 0.0                      # F = one-hot labels: CE 0
    assert _score(p, y, ev, eta_t=1e3) == pytest.approx(0.0, abs=1e-12)
    # F_y = p_y + (1 - w)(1 - p_y) grows as w = exp(-eta_t lambda/K) falls: the score is monotone
    grid = [0.0, 1e-5, 1e-4, 3e-4, 1e-3, 1e-2]
    scores = [_score(p, y, ev, eta_t=e) for e in grid]
    assert all(b > a for a, b in zip(scores, scores[1:]))


def test_per_logit_unit_by_hand():
    """Default scale "per_logit": the exponent is eta_t * lambda_k / K."""
    p, y = _probs(n=6, k=3)
    ev = np.array([300.0, 600.0, 900.0])
    eta = 2e-3
    w = np.exp(-eta * ev / 3.0)[y][:, None]
    expected = (1 - w) * np.eye(3)[y] + w * p
    np.testing.assert_allclose(evolve_logits(p, y, ev, eta), expected, rtol=1e-14)
    np.testing.assert_allclose(evolve_logits(p, y, ev, eta, eigenvalue_scale="none"),
                               (1 - np.exp(-eta * ev)[y][:, None]) * np.eye(3)[y]
                               + np.exp(-eta * ev)[y][:, None] * p, rtol=1e-14)
    assert lead.DEFAULT_EIGENVALUE_SCALE == "per_logit"


def test_a_models_absolute_ntk_scale_counts_under_the_default_and_not_under_mean():
    """One eta*t for the zoo: a model with a larger NTK (faster evolution) scores higher, and its
    score is a function of its own pair only. The per-model "mean" deviation divides the scale
    away: every multiple of lambda gives the same score."""
    p, y = _probs()
    ev = np.array([1e3, 2e3, 3e3])
    eta = lead.DEFAULT_ETA_T
    slow, fast = _score(p, y, ev, eta_t=eta), _score(p, y, 10.0 * ev, eta_t=eta)
    assert fast > slow
    for c in (0.01, 10.0, 1e3):
        assert _score(p, y, c * ev, eta_t=1.0, eigenvalue_scale="mean") == pytest.approx(
            _score(p, y, ev, eta_t=1.0, eigenvalue_scale="mean"), rel=1e-12)
    # the score of one pair does not change with what else is scored ("the zoo")
    alone = _score(p, y, ev)
    _score(_probs(seed=1)[0], y, 50.0 * ev)              # another model of the zoo
    assert _score(p, y, ev) == alone


def test_per_logit_scale_makes_eta_t_independent_of_the_number_of_classes():
    """The sum of logits makes lambda linear in K; per logit, K classes that evolve at the same
    per-logit rate get the same keep weight whatever K (here 2 and 6 classes)."""
    weights = []
    for k in (2, 6):
        y = np.arange(12) % k
        p = np.full((12, k), 1.0 / k)
        ev = np.full(k, 500.0 * k)                     # lambda = K x (per-logit rate 500)
        f = evolve_logits(p, y, ev, 1e-3)
        rows = np.arange(12)
        weights.append((1.0 - f[rows, y]) / (1.0 - 1.0 / k))   # = w, the weight left on p
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-14)
    np.testing.assert_allclose(weights[0], np.exp(-0.5), rtol=1e-14)


def test_ntk_input_cannot_be_replaced_by_a_constant_silently():
    """Two classes with different lambda evolve differently: replacing the per-class lambda by a
    constant (or swapping the classes' values) changes the score; so does the scale of lambda."""
    p, y = _probs(k=3)
    ev = np.array([200.0, 2000.0, 20000.0])
    eta = lead.DEFAULT_ETA_T
    base = _score(p, y, ev, eta_t=eta)
    assert abs(_score(p, y, np.full(3, ev.mean()), eta_t=eta) - base) > 1e-3
    assert abs(_score(p, y, ev[::-1].copy(), eta_t=eta) - base) > 1e-3
    assert abs(_score(p, y, 3.0 * ev, eta_t=eta) - base) > 1e-3


def test_default_eta_t_neither_saturates_nor_freezes_a_typical_backbone():
    """At the default eta_t a typical per-logit lambda of the zoo (the median over the ablation's
    pairs, benchmarks/results/lead_ablation.md) keeps a weight between 0.2 and 0.8 on the initial
    logits."""
    typical = lead.TYPICAL_LAMBDA_PER_LOGIT
    keep = np.exp(-lead.DEFAULT_ETA_T * typical)
    assert 0.2 < keep < 0.8


def test_bad_time_scale_input():
    p, y = _probs()
    ev = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="eta_t"):
        _score(p, y, ev, eta_t=-1.0)
    with pytest.raises(ValueError, match="eigenvalue_scale"):
        _score(p, y, ev, eigenvalue_scale="zoo")
    with pytest.raises(ValueError, match="class_eigenvalues"):
        _score(p, y, np.array([1.0, 0.0, 3.0]))
