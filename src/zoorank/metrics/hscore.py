"""H-score (Bao et al., ICIP 2019) and its shrinkage-regularised form (Ibrahim et al.,
"Newer is not always better: Rethinking transferability metrics, their peculiarities,
stability and performance", ECML-PKDD 2022 / arXiv 2110.06893).

    H(f)       = tr( cov(f)^+ cov(E[f | y]) )
    H_alpha(f) = tr( cov_alpha(f)^-1 (1 - alpha) cov(E[f | y]) ),
    cov_alpha  = (1 - alpha) cov(f) + alpha * mu * I,   mu = tr(cov(f)) / D,

with alpha the Ledoit-Wolf shrinkage (Ledoit & Wolf 2004, as in
``sklearn.covariance.ledoit_wolf_shrinkage``) unless given. Higher is better.

Both are computed without forming the N x D matrix of class-mean features: with centred
features, ``cov(E[f|y]) = sum_c (n_c/N) m_c m_c^T`` (m_c the centred class means), so
``tr(A^-1 cov(E[f|y])) = sum_c (n_c/N) m_c^T A^-1 m_c``, solved with a Cholesky factor
of the D x D matrix ``A`` when it is well conditioned (estimated reciprocal condition
number > 1e-10) and otherwise through its eigendecomposition (pseudo-inverse, eigenvalues
below 1e-15 x the largest dropped). Cost O(N D^2 + D^3), dominated by forming the
covariance, in float64 (as the reference's ``np.cov``: the inverse amplifies any rounding
by the condition number) by BLAS syrk over row blocks, with no centred copy of the features.

Checked against thuml/Transfer-Learning-Library ``tllib/ranking/hscore.py``
(``h_score``: equal to machine precision, both use the pseudo-inverse with rcond 1e-15;
``regularized_h_score``: tllib mixes the biased Ledoit-Wolf covariance with an unbiased
``np.cov`` of the class means, so its value is ours times N/(N-1), a model-independent
factor; we use the biased (1/N) estimator throughout so that shrinkage 0 gives H(f)).
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from zoorank.metrics._blocked import centred_gram, class_stats
from zoorank.metrics.validation import check_features_labels

_RCOND = 1e-15  # pseudo-inverse cut-off relative to the largest eigenvalue (as tllib)


def _centred_stats(x: np.ndarray, codes: np.ndarray, n_classes: int, stats=None):
    """Biased covariance (D x D), centred class means (K x D), class weights n_c/N and the
    squared norms of the centred rows (N,), all float64, accumulated block by block
    (``_blocked``: no centred or float64 copy of the features; syrk for the covariance).
    ``stats``: a :class:`zoorank.metrics._shared.PairStats` memo of these arrays, whose
    covariance is then computed once for every metric that shares it (never modified)."""
    n = x.shape[0]
    if stats is not None:
        counts, class_mu, mu = stats.class_stats(x, codes, n_classes)
        row_sq, cov = stats.centred_cov(x, codes, n_classes)
        return row_sq, cov, class_mu - mu, counts / n
    counts, class_mu, mu = class_stats(x, codes, n_classes)
    row_sq = np.empty(n)
    cov = centred_gram(x, mu, row_sq=row_sq) / n
    return row_sq, cov, class_mu - mu, counts / n


def _trace_inv_between(evals, evecs, means, weights, *, pinv: bool) -> float:
    """sum_c w_c m_c^T A^-1 m_c with A = evecs diag(evals) evecs^T."""
    proj = means @ evecs                                    # (K, D)
    if pinv:
        cut = _RCOND * max(evals.max(), 0.0)
        inv = np.where(evals > cut, 1.0 / np.where(evals > cut, evals, 1.0), 0.0)
    else:
        inv = 1.0 / evals
    return float(np.sum(weights[:, None] * proj ** 2 * inv[None, :]))


def _trace_inv_cholesky(a: np.ndarray, means, weights, *, min_rcond: float) -> float | None:
    """sum_c w_c m_c^T A^-1 m_c by a Cholesky solve (a fraction of an eigendecomposition's
    cost); None when A is not numerically positive definite or its estimated reciprocal
    condition number is below ``min_rcond`` (the caller then uses the eigenvalue path)."""
    factor, info = linalg.lapack.dpotrf(a, lower=1, clean=1)
    if info != 0:
        return None
    rcond, info = linalg.lapack.dpocon(factor, np.linalg.norm(a, 1), uplo="L")
    if info != 0 or not rcond > min_rcond:
        return None
    half = linalg.solve_triangular(factor, means.T, lower=True, check_finite=False)  # L^-1 M^T
    return float(np.sum(weights[None, :] * half ** 2))


def hscore(features, labels, *, stats=None, random_state: int = 0) -> float:
    """H-score (Bao et al., "An Information-theoretic Approach to Transferability in Task
    Transfer Learning", ICIP 2019): ``tr(cov(f)^+ cov(E[f|y]))``.

    The pseudo-inverse (eigenvalues below 1e-15 x the largest dropped) keeps it finite
    when cov(f) is singular (N <= D), where it is known to be unreliable; prefer
    :func:`regularized_hscore` there. Higher is better.

    ``stats``: optional per-pair memo (``_shared.PairStats``) sharing the covariance with
    the regularised H-score and LogME.

    Checked against thuml/Transfer-Learning-Library ``tllib/ranking/hscore.py`` (h_score).
    """
    chk = check_features_labels(features, labels, dtype=None)
    if stats is not None:
        stats.check(features, labels)
    _, cov, means, w = _centred_stats(chk.features, chk.labels, chk.n_classes, stats)
    # well-conditioned covariance (no eigenvalue near the 1e-15 cut): plain inverse
    fast = _trace_inv_cholesky(cov, means, w, min_rcond=1e-10)
    if fast is not None:
        return fast
    evals, evecs = np.linalg.eigh(cov)
    return _trace_inv_between(evals, evecs, means, w, pinv=True)


def ledoit_wolf_from_cov(cov: np.ndarray, xc: np.ndarray | None = None, *,
                         row_sq: np.ndarray | None = None) -> float:
    """Ledoit-Wolf shrinkage of the biased covariance ``cov`` of centred data ``xc`` (or of
    data whose centred rows have squared norms ``row_sq``).

    Same estimator as ``sklearn.covariance.ledoit_wolf_shrinkage`` (Ledoit & Wolf 2004),
    computed from the covariance already at hand: with ``mu = tr(S)/D``,
    ``delta = ||S - mu I||_F^2 / D`` and
    ``beta = (sum_n ||x_n||^4 / N - ||S||_F^2) / (N D)``, shrinkage ``min(beta, delta)/delta``.
    """
    if row_sq is None:
        row_sq = np.einsum("ij,ij->i", xc, xc)
    n, d = row_sq.shape[0], cov.shape[0]
    if d == 1:
        return 0.0
    mu = np.trace(cov) / d
    s_fro2 = float(np.sum(cov ** 2))
    delta = (s_fro2 - 2.0 * mu * np.trace(cov) + d * mu ** 2) / d
    beta = (float(np.sum(row_sq ** 2)) / n - s_fro2) / (n * d)
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def regularized_hscore(features, labels, *, shrinkage: float | None = None,
                       stats=None, random_state: int = 0) -> float:
    """Shrinkage-regularised H-score (Ibrahim et al., 2022):
    ``H_alpha = tr( ((1-alpha) S + alpha mu I)^-1 (1-alpha) cov(E[f|y]) )``.

    Parameters
    ----------
    shrinkage : alpha in [0, 1]; ``None`` (default) uses the Ledoit-Wolf estimate, as the
        paper and tllib do. ``shrinkage=0`` gives :func:`hscore`.
    stats : optional per-pair memo (``_shared.PairStats``), see :func:`hscore`.

    Higher is better. Checked against thuml/Transfer-Learning-Library
    ``tllib/ranking/hscore.py`` (regularized_h_score; equal up to its N/(N-1) factor, see
    module docstring).
    """
    chk = check_features_labels(features, labels, dtype=None)
    if stats is not None:
        stats.check(features, labels)
    row_sq, cov, means, w = _centred_stats(chk.features, chk.labels, chk.n_classes, stats)
    if shrinkage is None:
        alpha = ledoit_wolf_from_cov(cov, row_sq=row_sq)
    else:
        alpha = float(shrinkage)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1] or None, got {shrinkage}")
    d = cov.shape[0]
    mu = np.trace(cov) / d
    if mu <= 0:
        raise ValueError("features are constant: the covariance is zero and H-score is undefined")
    shrunk = (1.0 - alpha) * cov
    shrunk.flat[:: d + 1] += alpha * mu
    fast = _trace_inv_cholesky(shrunk, means, w, min_rcond=1e-10)
    if fast is not None:
        return (1.0 - alpha) * fast
    evals, evecs = np.linalg.eigh(cov)
    shrunk_evals = (1.0 - alpha) * np.clip(evals, 0.0, None) + alpha * mu
    return (1.0 - alpha) * _trace_inv_between(shrunk_evals, evecs, means, w, pinv=alpha == 0.0)
