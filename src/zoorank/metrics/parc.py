"""PARC: Pairwise Annotation Representation Comparison.

Bolya, Mittapalli & Hoffman, "Scalable Diverse Model Selection for Accessible Transfer
Learning", NeurIPS 2021.

Checked against dbolya/parc ``methods.py`` (``PARC.forward`` / ``get_parc_correlation`` /
``feature_reduce``) and the subsampling wrapper ``PARC_Score`` of lixiaotong97/PED
``metrics.py`` (TencentARC/SFDA ``metrics.py`` has the same wrapper).
"""
from __future__ import annotations

import numpy as np

from zoorank.metrics._common import pca_reduce, stratified_subsample
from zoorank.metrics.validation import check_features_labels


def _row_normalise(z: np.ndarray) -> np.ndarray:
    """Centre each row over its dimensions and scale it to unit norm, so that
    ``out @ out.T`` is the Pearson correlation matrix of the rows (``np.corrcoef``)."""
    zc = z - z.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(zc, axis=1)
    if np.any(norms <= 1e-12 * max(1.0, float(np.abs(z).max()))):
        bad = int(np.count_nonzero(norms <= 1e-12 * max(1.0, float(np.abs(z).max()))))
        raise ValueError(
            f"features: {bad} sample(s) are constant across the {z.shape[1]} reduced dimensions, "
            "so their Pearson correlation with other samples is undefined")
    return zc / norms[:, None]


def _split_dissimilarities(zr: np.ndarray, codes: np.ndarray, block: int = 1024):
    """Upper-triangle entries of ``1 - corr`` split by whether the pair shares a class.

    Returns (within, between) 1-D float64 arrays (their order is irrelevant)."""
    n = zr.shape[0]
    counts = np.bincount(codes)
    m_within = int((counts * (counts - 1) // 2).sum())
    m_total = n * (n - 1) // 2
    within = np.empty(m_within)
    between = np.empty(m_total - m_within)
    iw = ib = 0
    cols = np.arange(n)
    for s in range(0, n, block):
        e = min(n, s + block)
        dis = 1.0 - zr[s:e] @ zr.T                              # (b, n)
        upper = cols[None, :] > np.arange(s, e)[:, None]
        same = codes[s:e, None] == codes[None, :]
        w = dis[upper & same]
        b = dis[upper & ~same]
        within[iw:iw + w.size] = w
        between[ib:ib + b.size] = b
        iw += w.size
        ib += b.size
    return within, between


def _tie_term(sorted_a: np.ndarray, sorted_b: np.ndarray) -> float:
    """``sum(t**3 - t)`` over the tie groups of the union of two sorted arrays."""
    def runs(s):
        if s.size == 0:
            return s, np.zeros(0, dtype=np.int64)
        starts = np.concatenate([[0], np.flatnonzero(s[1:] != s[:-1]) + 1])
        return s[starts], np.diff(np.concatenate([starts, [s.size]]))
    va, ca = runs(sorted_a)
    vb, cb = runs(sorted_b)
    vals = np.concatenate([va, vb])
    cnts = np.concatenate([ca, cb])
    if vals.size == np.unique(vals).size and (cnts <= 1).all():
        return 0.0
    order = np.argsort(vals, kind="stable")
    vals, cnts = vals[order], cnts[order]
    starts = np.concatenate([[0], np.flatnonzero(vals[1:] != vals[:-1]) + 1])
    t = np.add.reduceat(cnts, starts).astype(np.float64)
    return float(np.sum(t ** 3 - t))


def spearman_binary(within: np.ndarray, between: np.ndarray) -> float:
    """Spearman correlation between values and a binary indicator (1 = ``between``).

    Exactly ``scipy.stats.spearmanr(np.r_[within, between], np.r_[0*within, 0*between+1])``
    (average ranks for ties) without ranking the whole vector: with M values, m1 of them in
    ``between`` and U the Mann-Whitney count ``#{(w, b): w < b} + #{w == b}/2``, the rank sum
    of ``between`` is ``R1 = m1(m1+1)/2 + U``, and

        rho = (R1/m1 - (M+1)/2) * sqrt(m1/m0) / sd(ranks),
        sd(ranks)^2 = (M^2 - 1)/12 - sum(t^3 - t)/(12 M)   (tie correction).

    Only the two groups are sorted (in place); U comes from ``searchsorted``.
    """
    m0, m1 = within.size, between.size
    if m0 == 0 or m1 == 0:
        raise ValueError("labels: PARC needs pairs of samples both within one class and across "
                         "classes (some class must have at least 2 samples)")
    within.sort()
    between.sort()
    u2 = 0  # 2 * U, exact integer
    step = 1 << 22
    for s in range(0, m1, step):
        q = between[s:s + step]
        lo = np.searchsorted(within, q, side="left")
        hi = np.searchsorted(within, q, side="right")
        u2 += int(lo.sum()) * 2 + int((hi - lo).sum())
    m = m0 + m1
    r1 = m1 * (m1 + 1) / 2.0 + u2 / 2.0
    var_r = (m * m - 1) / 12.0 - _tie_term(within, between) / (12.0 * m)
    if var_r <= 0:
        raise ValueError("features: all pairwise dissimilarities are equal; PARC is undefined")
    return float((r1 / m1 - (m + 1) / 2.0) * np.sqrt(m1 / m0) / np.sqrt(var_r))


def parc_score(features, labels, *, n_dims: int | None = 32, max_samples: int | None = 10_000,
               pca_solver: str = "randomized", pca_iterated_power: int | str = 1,
               scale: float = 100.0, random_state: int = 0, sample_ids=None) -> float:
    """PARC score (higher = better).

    Formula: reduce features to ``n_dims`` by PCA, standardise each dimension
    (``StandardScaler``), form the representation dissimilarity matrices
    ``D_F = 1 - corr(f_i, f_j)`` (Pearson over dimensions, between samples) and
    ``D_Y = 1 - corr(y_i, y_j)`` of the one-hot labels, and return
    ``scale * Spearman(triu(D_F), triu(D_Y))`` over the strict upper triangles.

    Because one-hot rows have correlation 1 (same class) or ``-1/(K-1)`` (different
    classes), ``triu(D_Y)`` is binary and the Spearman coefficient is computed exactly from
    the Mann-Whitney U statistic of the two groups (:func:`spearman_binary`), with average
    ranks for ties, instead of ranking all ``n(n-1)/2`` pairs.

    Parameters
    ----------
    n_dims: PCA dimension (reference default 32); None skips the reduction. Capped at
        ``min(D, n - 1)`` (the reference caps at ``n``, which leaves a zero-variance component
        that ``StandardScaler`` then amplifies).
    max_samples: the pairwise matrices are O(n^2), so when ``N > max_samples`` a seeded,
        stratified, order-independent subset is used (the PED/SFDA wrapper subsamples to
        15,000 per class-proportional ``int(p * n_k)``; the dbolya benchmark uses 500-image
        probe sets). None uses every sample.
    pca_solver, pca_iterated_power: the reference uses scikit-learn's randomized PCA with
        ``iterated_power=1`` (and ``random_state=1919``); "full" gives the exact PCA.
    scale: the reference reports ``100 * rho``.
    random_state: seeds the subsample and the randomized PCA.
    sample_ids: (N,) sample identities that choose the subsample and its canonical order
        (canonical dataset positions; default: row positions).

    Checked against dbolya/parc ``methods.py`` (PARC, ``feature_reduce``) and
    lixiaotong97/PED ``metrics.py`` (``PARC_Score``: subsample to 15,000, PCA 32).
    """
    chk = check_features_labels(features, labels)
    x, codes = chk.features, chk.labels
    idx = stratified_subsample(x, codes, max_samples, random_state=random_state,
                               canonical_order=True, sample_ids=sample_ids)
    x, codes = x[idx], codes[idx]
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"features: PARC needs at least 3 samples, got {n}")
    if n_dims is not None:
        n_dims = int(min(n_dims, x.shape[1], n - 1))
    z = pca_reduce(x, n_dims, solver=pca_solver, random_state=random_state,
                   iterated_power=pca_iterated_power)
    # StandardScaler semantics: population std, zero-variance columns left unscaled.
    z = z - z.mean(axis=0)
    sd = z.std(axis=0)
    sd[sd < 10 * np.finfo(np.float64).eps * max(1.0, float(np.abs(z).max()))] = 1.0
    z = z / sd
    zr = _row_normalise(z)
    within, between = _split_dissimilarities(zr, codes)
    # D_Y is larger for different-class pairs, so rho(D_F, D_Y) = rho(D_F, 1[between]).
    return scale * spearman_binary(within, between)
