"""SFDA: Self-challenging Fisher Discriminant Analysis.

Shao, Zhao, Ge, Shan, Li & Luo, "Not All Models Are Equal: Predicting Model
Transferability in a Self-challenging Fisher Space", ECCV 2022.

Checked against TencentARC/SFDA ``metrics.py`` (``SFDA._solve_eigen``, ``SFDA.fit``,
``SFDA.predict_proba``, ``_class_means``, ``_cov``, ``SFDA_Score``) and ``utils.py``
(``iterative_A``, the power iteration behind the automatic shrinkage).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.special import log_softmax, softmax

from zoorank.metrics._blocked import apply_rows, blocks64, centred_gram, class_stats
from zoorank.metrics._common import total_scatter, within_class_scatter
from zoorank.metrics.validation import check_features_labels


def power_top_eigenvalue(a: np.ndarray, n_iter: int = 3) -> float:
    """Largest-eigenvalue estimate of a symmetric PSD matrix by a short power iteration.

    The SFDA reference's procedure: start from the row sums ``x = A 1``; repeat ``n_iter``
    times ``y = Ax/|Ax|, x = Ay/|Ay|``; return ``x^T A y``. (If the row sums vanish the
    start vector falls back to the all-ones vector normalised, which the reference does not
    handle.)
    """
    x = a.sum(axis=1)
    if not np.linalg.norm(x) > 0:
        x = np.ones(a.shape[0])
    y = x
    for _ in range(n_iter):
        t = a @ x
        nt = np.linalg.norm(t)
        if not nt > 0:
            return 0.0
        y = t / nt
        t = a @ y
        x = t / np.linalg.norm(t)
    return float(x @ a @ y)


def automatic_shrinkage(sw: np.ndarray) -> float:
    """SFDA's regularisation strength ``max(exp(-5 * lambda_max(Sw)), 1e-10)``."""
    return float(max(np.exp(-5.0 * power_top_eigenvalue(sw, 3)), 1e-10))


def _shrink(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    """``(1 - s) C + s * (tr C / D) I`` (the reference's ``_cov(X, shrinkage)``)."""
    d = cov.shape[0]
    out = (1.0 - shrinkage) * cov
    out.flat[:: d + 1] += shrinkage * np.trace(cov) / d
    return out


def _solve_pd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^{-1} b`` for symmetric positive (semi)definite ``a``: Cholesky, else pseudo-inverse."""
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, lower=True, check_finite=False), b,
                                      check_finite=False)
    except np.linalg.LinAlgError:
        return scipy.linalg.pinvh(a) @ b


def _lda_fit(x: np.ndarray, codes: np.ndarray, n_classes: int, shrinkage: float | None):
    """Shrinkage LDA from class statistics accumulated in float64 block by block (the
    features may be float32 and are never copied whole): (coef, intercept, shrinkage, means)."""
    n = x.shape[0]
    counts, means, _ = class_stats(x, codes, n_classes)
    sw = centred_gram(x, means, codes=codes) / n          # sum_k pi_k Cov_k (biased)
    if shrinkage is None:
        shrinkage = automatic_shrinkage(sw)
    sw_s = _shrink(sw, shrinkage)
    coef = _solve_pd(sw_s, means.T).T
    intercept = -0.5 * np.sum(means * coef, axis=1) + np.log(counts / n)
    return coef, intercept, float(shrinkage), means


def regularized_lda(x: np.ndarray, codes: np.ndarray, n_classes: int, *,
                    shrinkage: float | None = None):
    """Shrinkage LDA of the SFDA reference: (coef (K, D), intercept (K,), shrinkage).

    ``Sw = sum_k pi_k Cov_k`` (biased), ``Sw_s = (1-s) Sw + s tr(Sw)/D I`` with ``s`` from
    :func:`automatic_shrinkage` unless given; ``coef_k = Sw_s^{-1} mu_k``,
    ``intercept_k = -mu_k^T Sw_s^{-1} mu_k / 2 + log pi_k``.

    The reference obtains ``coef = means @ W @ W.T`` from *all* ``D`` generalised
    eigenvectors ``W`` of ``(Sb, Sw_s)``; as ``W^T Sw_s W = I``, ``W W^T = Sw_s^{-1}``, so
    the eigendecomposition only orders directions and a Cholesky solve gives the same
    classifier (see :func:`fda_projection` for the projection itself). The statistics are
    float64 whatever the features' dtype (as the reference's ``np.cov``).
    """
    coef, intercept, s, _ = _lda_fit(x, codes, n_classes, shrinkage)
    return coef, intercept, s


def fda_projection(features, labels, *, shrinkage: float | None = None):
    """Regularised FDA directions of SFDA: eigenpairs of ``Sb w = lambda Sw_s w``.

    ``St_s`` and ``Sw_s`` are the shrunk total and within-class covariances (same ``s``)
    and ``Sb = St_s - Sw_s``. Solved by whitening with the Cholesky factor of ``Sw_s`` and a
    symmetric eigendecomposition. Returns ``(eigenvalues descending, W (D, D))`` with
    ``W^T Sw_s W = I``; the first ``K - 1`` columns span the discriminant space.
    """
    chk = check_features_labels(features, labels)
    x, codes, k = chk.features, chk.labels, chk.n_classes
    sw = within_class_scatter(x, codes, k)
    if shrinkage is None:
        shrinkage = automatic_shrinkage(sw)
    sw_s = _shrink(sw, shrinkage)
    sb = _shrink(total_scatter(x), shrinkage) - sw_s
    low = np.linalg.cholesky(sw_s)
    tmp = scipy.linalg.solve_triangular(low, sb, lower=True)
    m = scipy.linalg.solve_triangular(low, tmp.T, lower=True)   # L^-1 Sb L^-T
    vals, u = np.linalg.eigh((m + m.T) / 2)
    w = scipy.linalg.solve_triangular(low.T, u, lower=False)   # L^-T U
    order = np.argsort(vals)[::-1]
    return vals[order], w[:, order]


def _lda_log_probs(x, codes, k, shrinkage):
    """(N, K) LDA log posteriors (logits formed block by block in float64), shrinkage, means."""
    coef, intercept, s, means = _lda_fit(x, codes, k, shrinkage)
    logp = apply_rows(x, lambda blk, rows: log_softmax(blk @ coef.T + intercept, axis=1))
    return logp, s, means


def _confmix(x, codes, p_true, others):
    """``x_i <- q_i x_i + (1 - q_i) others[y_i]`` into a new array of x's dtype (the
    reference overwrites its float32 input in place with the same rounding), block by block."""
    out = np.empty_like(x)
    for s, e, blk in blocks64(x):
        q = p_true[s:e, None]
        blk *= q
        blk += (1.0 - q) * others[codes[s:e]]
        out[s:e] = blk
    return out


def sfda_from_checked(x: np.ndarray, codes: np.ndarray, n_classes: int, *,
                      shrinkage: float | None = None, confmix: bool = True,
                      score: str = "prob") -> float:
    """SFDA on already validated arrays (shared with :mod:`zoorank.metrics.ped`); ``x``
    may be float32 (statistics and logits are float64, see :func:`_lda_fit`)."""
    if score not in ("prob", "log_prob"):
        raise ValueError(f"score must be 'prob' or 'log_prob', got {score!r}")
    if shrinkage is not None and not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1] or None, got {shrinkage!r}")
    k = n_classes
    rows = np.arange(x.shape[0])
    logp, s, means = _lda_log_probs(x, codes, k, shrinkage)
    if confmix:
        # "soften" the LDA probabilities with a second softmax, as the reference does
        p_true = softmax(np.exp(logp), axis=1)[rows, codes]
        others = (means.sum(axis=0)[None, :] - means) / (k - 1)   # mean of the other classes
        x = _confmix(x, codes, p_true, others)
        logp, _, _ = _lda_log_probs(x, codes, k, s)               # same shrinkage
    true = logp[rows, codes]
    return float(np.mean(np.exp(true)) if score == "prob" else np.mean(true))


def sfda_score(features, labels, *, shrinkage: float | None = None, confmix: bool = True,
               score: str = "prob", random_state: int = 0) -> float:
    """SFDA score (higher = better).

    1. Regularised FDA / shrinkage LDA on the features: ``Sw_s = (1-s) Sw + s tr(Sw)/D I``,
       ``s = max(exp(-5 lambda_max(Sw)), 1e-10)`` (``lambda_max`` by a 3-step power
       iteration, as the reference), class posteriors
       ``p(k|x) = softmax_k(x^T Sw_s^{-1} mu_k - mu_k^T Sw_s^{-1} mu_k / 2 + log pi_k)``
       (:func:`regularized_lda`; equal to the reference's projection on all FDA directions).
    2. ConfMix (``confmix=True``): with ``q_i = softmax(p(.|x_i))[y_i]`` (the reference's
       second, softening softmax), move each sample towards the mean of the *other* class
       means, ``x_i <- q_i x_i + (1 - q_i) mean_{k != y_i} mu_k``.
    3. Refit the LDA on the mixed features with the same ``s`` and return the mean
       posterior of the true class, ``(1/N) sum_i p(y_i|x_i)`` (``score="prob"``, the
       reference, which drops the log "in case of instability"), or the mean log posterior
       (``score="log_prob"``).

    ``shrinkage``: fixed ``s`` in [0, 1] instead of the automatic one. ``random_state`` is
    accepted for a uniform signature (SFDA is deterministic).

    Checked against TencentARC/SFDA ``metrics.py`` (``SFDA``, ``SFDA_Score``).
    """
    chk = check_features_labels(features, labels, dtype=None)
    return sfda_from_checked(chk.features, chk.labels, chk.n_classes, shrinkage=shrinkage,
                             confmix=confmix, score=score)
