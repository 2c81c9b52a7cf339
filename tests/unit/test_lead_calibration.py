"""LEAD's initial-logit calibration (issue 13): softmax with a fixed temperature (the default),
Platt, a fitted temperature; the tie ceiling of Platt's smoothed targets and its absence under
the default. Small float64 cases, fast."""
from __future__ import annotations

import numpy as np
import pytest

from zoorank.metrics import lead
from zoorank.metrics.lead import calibrate, lead_score, svm_decision_values, svm_logits

F64 = dict(dtype="float64")


def separable(margin, n=20, d=8, seed=0):
    """Two linearly separable classes (coordinate 0 has the sign of the class) whose gap grows
    with ``margin``; the other coordinates are unit noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n)
    x = rng.normal(size=(2 * n, d))
    x[:, 0] = np.where(y == 1, 1.0, -1.0) * (margin + np.abs(rng.normal(size=2 * n)))
    return x, y


def test_softmax_with_a_fixed_temperature_by_hand():
    s = np.array([[1.0, -1.0, 0.2], [-0.5, 0.7, -0.9]])
    codes = np.array([0, 1])
    for t in (1.0, 0.3):
        z = np.exp(s / t)
        np.testing.assert_allclose(calibrate(s, codes, 3, "softmax", t), z / z.sum(1, keepdims=True),
                                   rtol=1e-14)
    x, y = separable(2.0)
    dec = svm_decision_values(x, y, **F64)
    np.testing.assert_allclose(svm_logits(x, y, normalisation="softmax", temperature=0.5, **F64),
                               calibrate(dec, y, 2, "softmax", 0.5), rtol=1e-12)
    assert lead.DEFAULT_NORMALISATION == "softmax"


def test_platt_caps_separable_classes_near_the_smoothed_target():
    """Platt's smoothed target (n+1)/(n+2) is where a separable class ends whatever its margin:
    the tie ceiling of the issue (n = 20 per class: 0.955)."""
    cap = 21.0 / 22.0
    rows = np.arange(40)
    for margin in (2.0, 8.0):
        x, y = separable(margin)
        p = svm_logits(x, y, normalisation="platt", **F64)[rows, y]
        assert abs(p.mean() - cap) < 0.01


def test_no_tie_ceiling_at_the_top_under_the_default_calibration():
    """Separable classes with a larger margin score higher under the default, by a large relative
    step: the least-squares SVM's out-of-fold values approach the +1/-1 targets as the margin
    grows, and the CE of ``softmax(s / T)`` approaches its floor ``(K-1) exp(-2/T)`` (2e-9 for
    T = 0.1, K = 2: reached only by a perfect fit) from above. Under Platt the CE stops at
    ``-log((n+1)/(n+2)) = 0.0465`` (n = 20): margins 4 and 16 then differ by a few per cent, a tie
    at the top."""
    t = lead.DEFAULT_TEMPERATURE
    ce = [-lead_score(*separable(m), eta_t=0.0, **F64) for m in (4.0, 16.0)]
    assert ce[0] > ce[1] > np.exp(-2.0 / t)
    assert ce[0] / ce[1] > 2.0                    # more than twice: not a ceiling
    ev = np.array([1e3, 1e3])
    scores = [lead_score(*separable(m), class_eigenvalues=ev, **F64) for m in (4.0, 16.0)]
    assert scores[1] > scores[0]
    platt = [-lead_score(*separable(m), eta_t=0.0, normalisation="platt", **F64) for m in (4.0, 16.0)]
    assert platt[0] / platt[1] < 1.05
    np.testing.assert_allclose(platt, -np.log(21.0 / 22.0), rtol=0.05)


def test_fitted_temperature_and_platt_are_probabilities_and_informative():
    rng = np.random.default_rng(3)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 10)) + 1.5 * np.eye(3, 10)[y]
    for norm in ("platt", "temperature", "softmax"):
        p = svm_logits(x, y, normalisation=norm, **F64)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
        assert (p.argmax(1) == y).mean() > 0.6


def test_bad_calibration_arguments():
    x, y = separable(2.0)
    with pytest.raises(ValueError, match="normalisation"):
        svm_logits(x, y, normalisation="isotonic")
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="temperature"):
            svm_logits(x, y, temperature=bad)
