"""LEAD stage 1, second half: decision values of the SVM -> initial class probabilities
``log_init`` (N, K). numpy / scipy only.

- ``"softmax"``: ``softmax(s / T)`` with a fixed temperature ``T`` in the units of the decision
  values (the least-squares SVM's targets are +1/-1, so ``T`` means the same for every backbone).
  Nothing is fitted, so a larger margin always gives a larger true-class probability.
- ``"platt"``: per-class Platt sigmoid fitted with Platt's smoothed targets (Platt 1999; Newton as
  Lin, Lin & Weng 2007), renormalised over the K classes. On separable classes the fit reproduces
  the smoothed target ``(n+1)/(n+2)`` whatever the margin: a ceiling at which strong backbones tie.
- ``"temperature"``: ``softmax(beta s)`` with ``beta`` fitted by minimum NLL (bounded to
  ``[e^-12, e^12]``; on separable classes it runs to the bound and every strong backbone gets 1).

Measured against the ground truth in ``benchmarks/results/lead_ablation.md``; ``docs/lead.md``.
"""
from __future__ import annotations

import math

import numpy as np

from zoorank.metrics.lead.evolution import _choice, _log_softmax
from zoorank.metrics.validation import one_hot

NORMALISATIONS = ("softmax", "platt", "temperature")


def calibrate(scores: np.ndarray, codes: np.ndarray, n_classes: int, normalisation: str,
              temperature: float = 1.0) -> np.ndarray:
    """Class probabilities (N, K) from decision values ``scores`` (N, K) by ``normalisation``."""
    _choice(normalisation, NORMALISATIONS, "normalisation")
    if normalisation == "platt":
        return _platt_probabilities(scores, codes, n_classes)
    if normalisation == "temperature":
        return _temperature_probabilities(scores, codes)
    check_temperature(temperature)
    return _softmax(np.asarray(scores, dtype=np.float64) / float(temperature))


def check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating, np.integer)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return float(temperature)


def _platt_probabilities(scores: np.ndarray, codes: np.ndarray, n_classes: int,
                         max_iter: int = 100) -> np.ndarray:
    """Per-class Platt scaling ``sigma(a_k s + b_k)`` (Platt 1999; Newton with backtracking
    as in Lin, Lin & Weng 2007, smoothed targets), renormalised over the K classes."""
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    pos = one_hot(codes, n_classes).astype(bool)
    n_pos = pos.sum(axis=0).astype(np.float64)
    n_neg = n - n_pos
    t = np.where(pos, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def objective(a, b):
        f = s * a + b
        return np.sum(np.logaddexp(0.0, f) - t * f, axis=0)

    a = np.zeros(n_classes)
    b = np.log((n_pos + 1.0) / (n_neg + 1.0))
    fval = objective(a, b)
    for _ in range(max_iter):
        f = s * a + b
        p = 0.5 * (1.0 + np.tanh(0.5 * f))                 # stable sigmoid
        d = p - t
        ga, gb = (d * s).sum(axis=0), d.sum(axis=0)
        if max(np.abs(ga).max(), np.abs(gb).max()) < 1e-11 * max(1.0, n):
            break
        w = p * (1.0 - p)
        haa = (w * s * s).sum(axis=0)
        hab = (w * s).sum(axis=0)
        hbb = w.sum(axis=0)
        ridge = 1e-12 * np.maximum(1.0, haa + hbb) + 1e-300
        haa, hbb = haa + ridge, hbb + ridge
        det = haa * hbb - hab * hab
        det = np.where(det > 0, det, ridge * ridge)
        da = -(hbb * ga - hab * gb) / det
        db = -(haa * gb - hab * ga) / det
        slope = ga * da + gb * db
        step = np.ones(n_classes)
        accepted = np.zeros(n_classes, dtype=bool)
        new_f = fval.copy()
        for _ in range(40):
            cand = objective(a + step * da, b + step * db)
            # Armijo, or a full Newton step whose change is below rounding (near the optimum
            # the objective cannot rank the points; the gradient test below ends the loop)
            ok = (~accepted) & ((cand <= fval + 1e-4 * step * slope)
                                | ((step == 1.0) & (cand - fval <= 1e-13 * np.abs(fval) + 1e-300)))
            new_f = np.where(ok, cand, new_f)
            accepted |= ok
            if accepted.all():
                break
            step = np.where(accepted, step, 0.5 * step)
        step = np.where(accepted, step, 0.0)
        a, b = a + step * da, b + step * db
        fval = np.where(accepted, new_f, fval)
        if not accepted.any():                             # at the optimum to rounding
            break
    f = s * a + b
    logp = -np.logaddexp(0.0, -f)                          # log sigmoid
    return _softmax(logp)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _temperature_probabilities(scores: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Softmax of ``beta * scores`` with ``beta`` minimising the NLL (convex in beta)."""
    from scipy.optimize import minimize_scalar

    s = np.asarray(scores, dtype=np.float64)
    rows = np.arange(s.shape[0])

    def nll(log_beta):
        return -_log_softmax(np.exp(log_beta) * s)[rows, codes].mean()

    res = minimize_scalar(nll, bounds=(-12.0, 12.0), method="bounded", options={"xatol": 1e-6})
    return _softmax(np.exp(res.x) * s)
