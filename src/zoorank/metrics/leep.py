"""LEEP: Log Expected Empirical Prediction (Nguyen et al., ICML 2020).

Given the source classifier's probabilities ``theta(x_i)`` over source classes ``z`` and the
target labels ``y_i``:

    P(y, z)   = (1/N) * sum_{i: y_i = y} theta(x_i)_z          (empirical joint)
    P(y | z)  = P(y, z) / sum_y' P(y', z)                      (empirical conditional)
    LEEP      = (1/N) * sum_i log( sum_z P(y_i | z) * theta(x_i)_z )

Higher is better (an average log-likelihood, <= 0).

Checked against thuml/LogME ``LEEP.py`` (identical values on random inputs, see the
unit tests' reference comparison in the report). The helper :func:`leep_from_probs`
is shared with N-LEEP (``nleep.py``), which feeds GMM posteriors instead of classifier
probabilities.
"""
from __future__ import annotations

import numpy as np

from zoorank.metrics._blocked import blocks64, class_runs
from zoorank.metrics.validation import check_features_labels, probability_rows

_TINY = np.finfo(np.float64).tiny


def leep_from_probs(probs: np.ndarray, codes: np.ndarray, n_classes: int, *,
                    log: bool = True, row_sums: np.ndarray | None = None) -> float:
    """LEEP of already-validated probabilities ``probs`` (N, C) and label codes (N,).

    Source classes that receive zero total mass (``sum_i probs[i, z] == 0``) have an
    undefined ``P(y|z)``; they contribute nothing (every ``probs[i, z]`` is 0) and are
    given a zero conditional instead of the NaN the reference code would produce.
    With ``log=False`` the mean expected empirical probability (no log) is returned, as
    TencentARC/SFDA ``metrics.py`` does for LEEP and N-LEEP.

    ``row_sums`` (N,): when given, row ``i`` is read as ``probs[i] / row_sums[i]`` (the
    renormalised probabilities) without forming that copy.

    Cost: two passes over ``probs`` in row blocks converted to float64 (so float32 input is
    accumulated in float64, never copied whole), in class order: per-class weighted sums of
    the rows for ``P(y, z)``, then one dot product per sample with its class's ``P(y|.)``; no (N, C) one-hot, gather, float64 or
    normalised copy (issue 17).
    """
    n, c = probs.shape
    w = np.full(n, 1.0 / n) if row_sums is None else 1.0 / (n * np.asarray(row_sums, dtype=np.float64))
    # Rows are read in class order (gathered block by block into one reused float64
    # buffer), so that each block is a few runs of one class: P(y, z) is a weighted column
    # sum per run and eep_i a product with that class's row of P(y|z), both einsum loops
    # (no BLAS call per block: on a loaded machine the thread wake-ups of many skinny BLAS
    # products cost more than the arithmetic).
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    w_sorted = w[order]

    joint = np.zeros((n_classes, c))                           # (K, C)  P(y, z)
    for s, e, blk in blocks64(probs, rows=order):
        for a, b, k in class_runs(sorted_codes[s:e]):
            joint[k] += np.einsum("i,ij->j", w_sorted[s + a:s + b], blk[a:b])
    pz = joint.sum(axis=0)                                   # (C,)    P(z)
    cond = np.divide(joint, pz, out=np.zeros_like(joint), where=pz > 0)  # P(y | z)
    # expected empirical prediction of the true label only: sum_z P(y_i|z) theta_iz
    eep_sorted = np.empty(n)
    for s, e, blk in blocks64(probs, rows=order):
        for a, b, k in class_runs(sorted_codes[s:e]):
            eep_sorted[s + a:s + b] = np.einsum("ij,j->i", blk[a:b], cond[k])
    eep = np.empty(n)
    eep[order] = eep_sorted
    if row_sums is not None:
        eep /= row_sums
    if not log:
        return float(eep.mean())
    return float(np.mean(np.log(np.maximum(eep, _TINY))))


def leep_score(features, labels, *, source_probs, random_state: int = 0) -> float:
    """LEEP (Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned
    Representations", ICML 2020).

    ``LEEP = mean_i log sum_z P_hat(y_i | z) * theta(x_i)_z`` with the empirical
    conditional ``P_hat(y|z)`` built from the source probabilities (module docstring).
    Higher is better.

    Parameters
    ----------
    features : (N, D) array. Only its shape is checked (LEEP uses the source classifier's
        output, not the features, so their values are never read); kept for the common
        metric signature.
    labels : (N,) target labels.
    source_probs : (N, C) source-task probabilities (softmax of the backbone's own
        classifier, e.g. ImageNet's 1000 classes); each row is divided by its sum (rows
        must sum to 1 within 1e-3).
    random_state : unused (deterministic).

    Checked against thuml/LogME ``LEEP.py``.
    """
    chk = check_features_labels(features, labels, dtype=None, finite=False)
    probs, sums = probability_rows(source_probs, name="source_probs", n_rows=chk.n_samples)
    return leep_from_probs(probs, chk.labels, chk.n_classes, row_sums=sums)
