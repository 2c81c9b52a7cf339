"""Baselines A: LogME, LEEP, NCE, N-LEEP, H-score (+ regularised), TransRate, kNN, LFC.

Each metric is checked against an independent (direct, loop-based or explicit) formulation
on small synthetic data, plus invariances, separability, low-data behaviour and input
validation.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from zoorank.metrics.hscore import hscore, ledoit_wolf_from_cov, regularized_hscore
from zoorank.metrics._common import stratified_subsample
from zoorank.metrics.knn import knn_score
from zoorank.metrics.leep import leep_score
from zoorank.metrics.lfc import lfc_exact, lfc_score
from zoorank.metrics.logme import log_evidence, logme_fit, logme_score
from zoorank.metrics.nce import nce_score
from zoorank.metrics.nleep import nleep_score, pca_reduce
from zoorank.metrics.transrate import transrate_score
from zoorank.metrics.validation import one_hot


def make_data(n=120, d=8, k=4, c=7, sep=3.0, seed=0):
    """Gaussian blobs (balanced classes) and informative source probabilities."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    rng.shuffle(y)
    means = rng.normal(size=(k, d)) * sep
    x = means[y] + rng.normal(size=(n, d))
    logits = rng.normal(size=(n, c)) + 2.5 * np.eye(c)[y % c]
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return x, y, p


# name -> callable(x, y, p)
# ids: the samples' identities (canonical dataset positions); metrics that choose a subset or
# an order take them, so that permuting (identity, features, label) together changes nothing
METRICS = {
    "logme": lambda x, y, p, ids=None: logme_score(x, y),
    "leep": lambda x, y, p, ids=None: leep_score(x, y, source_probs=p),
    "nce": lambda x, y, p, ids=None: nce_score(x, y, source_probs=p),
    "nleep": lambda x, y, p, ids=None: nleep_score(x, y, sample_ids=ids),
    "hscore": lambda x, y, p, ids=None: hscore(x, y),
    "reg_hscore": lambda x, y, p, ids=None: regularized_hscore(x, y),
    "transrate": lambda x, y, p, ids=None: transrate_score(x, y),
    "knn": lambda x, y, p, ids=None: knn_score(x, y, k=5, sample_ids=ids),
    "lfc": lambda x, y, p, ids=None: lfc_score(x, y, sample_ids=ids),
}


# ----------------------------------------------------------------------------- LogME
def _direct_log_evidence(x, t, alpha, beta):
    n = x.shape[0]
    cov = np.eye(n) / beta + x @ x.T / alpha
    return stats.multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(t)


@pytest.mark.parametrize("n,d", [(60, 10), (15, 40)])  # N > D and N < D (rank-deficient)
def test_logme_evidence_matches_direct_marginal_likelihood(n, d):
    x, y, _ = make_data(n=n, d=d, k=3, sep=1.0)
    targets = one_hot(y, 3)
    fit = logme_fit(x, targets, tol=1e-12, max_iter=10_000)
    direct = []
    for j in range(3):
        a, b = fit["alpha"][j], fit["beta"][j]
        ref = _direct_log_evidence(x, targets[:, j], a, b)
        direct.append(ref / n)
        assert fit["evidence"][j] * n == pytest.approx(ref, rel=1e-9, abs=1e-8)
        assert log_evidence(x, targets[:, j], a, b) == pytest.approx(ref, rel=1e-9, abs=1e-8)
        # stationary point: the evidence is lower at perturbed (alpha, beta). When N < D the
        # labels lie in span(F) and the evidence keeps growing with beta (the supremum is
        # noise-free; the reference's 1e-5 in beta's denominator stops it), so only alpha
        # is checked there.
        steps = [(1.05, 1), (0.95, 1), (1.3, 1), (0.7, 1)]
        if n > d:
            steps += [(1, 1.05), (1, 0.95), (1.05, 0.95), (0.9, 1.1)]
        for fa, fb in steps:
            assert _direct_log_evidence(x, targets[:, j], a * fa, b * fb) < ref
    assert logme_score(x, y, tol=1e-12, max_iter=10_000) == pytest.approx(np.mean(direct), rel=1e-9)


def test_logme_default_tolerance_close_to_converged_and_thuml_compat():
    x, y, _ = make_data(n=200, d=12, k=4, sep=1.0)
    tight = logme_score(x, y, tol=1e-12, max_iter=10_000)
    assert logme_score(x, y) == pytest.approx(tight, rel=1e-8)
    # N > D, full rank: thuml's formula coincides up to its looser stopping rule
    assert logme_score(x, y, thuml_compat=True) == pytest.approx(tight, rel=1e-5)
    # N < D: thuml's value exceeds the exact log evidence by (D - N)/2 log(alpha) / N
    xs, ys, _ = make_data(n=20, d=50, k=4, sep=1.0)
    fit = logme_fit(xs, one_hot(ys, 4), thuml_compat=True)
    exact = logme_fit(xs, one_hot(ys, 4), tol=1e-3, max_iter=11)
    assert np.allclose(fit["alpha"], exact["alpha"]) and np.allclose(fit["beta"], exact["beta"])
    gap = fit["evidence"] - exact["evidence"]
    assert np.all(gap > 0) or np.all(fit["alpha"] < 1)
    assert np.allclose(gap, (50 - 20) / 2 * np.log(fit["alpha"]) / 20, rtol=1e-2, atol=1e-6)


# ----------------------------------------------------------------------------- H-score
def _direct_hscore(x, y):
    g = np.zeros_like(x)
    for c in np.unique(y):
        g[y == c] = x[y == c].mean(axis=0)
    return np.trace(np.linalg.pinv(np.cov(x, rowvar=False), rcond=1e-15) @ np.cov(g, rowvar=False))


def test_hscore_matches_definition():
    x, y, _ = make_data(n=150, d=6, k=5, sep=1.0)
    assert hscore(x, y) == pytest.approx(_direct_hscore(x, y), rel=1e-10)
    # singular covariance (N < D): pseudo-inverse definition
    xs, ys, _ = make_data(n=12, d=20, k=3, sep=1.0)
    assert hscore(xs, ys) == pytest.approx(_direct_hscore(xs, ys), rel=1e-6)


def test_regularized_hscore_matches_ledoit_wolf_definition():
    from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage
    x, y, _ = make_data(n=80, d=30, k=4, sep=1.0)
    xc = x - x.mean(axis=0)
    lw = LedoitWolf().fit(x)
    assert ledoit_wolf_from_cov(xc.T @ xc / len(x), xc) == pytest.approx(
        ledoit_wolf_shrinkage(x), rel=1e-10)
    alpha = lw.shrinkage_
    g = np.zeros_like(x)
    for c in range(4):
        g[y == c] = xc[y == c].mean(axis=0)
    cov_g = g.T @ g / len(x)  # biased, like the Ledoit-Wolf covariance
    direct = np.trace(np.linalg.inv(lw.covariance_) @ ((1 - alpha) * cov_g))
    assert regularized_hscore(x, y) == pytest.approx(direct, rel=1e-9)
    assert regularized_hscore(x, y, shrinkage=0.0) == pytest.approx(hscore(x, y), rel=1e-9)
    with pytest.raises(ValueError, match="shrinkage"):
        regularized_hscore(x, y, shrinkage=1.5)


# ----------------------------------------------------------------------------- LEEP / NCE
def test_leep_matches_loop_computation():
    x, y, p = make_data(n=50, k=3, c=5, sep=1.0)
    n, c = p.shape
    joint = np.zeros((3, c))
    for i in range(n):
        for z in range(c):
            joint[y[i], z] += p[i, z] / n
    total = 0.0
    for i in range(n):
        eep = sum(joint[y[i], z] / joint[:, z].sum() * p[i, z] for z in range(c))
        total += math.log(eep)
    assert leep_score(x, y, source_probs=p) == pytest.approx(total / n, rel=1e-12)


def test_leep_source_class_without_mass_is_finite():
    x, y, p = make_data(n=40, k=2, c=4)
    p = np.hstack([p, np.zeros((40, 1))])
    assert np.isfinite(leep_score(x, y, source_probs=p))


def test_nce_matches_counting():
    x, y, p = make_data(n=70, k=4, c=6, sep=1.0)
    z = p.argmax(axis=1)
    n = len(y)
    pairs, zs = Counter(zip(y.tolist(), z.tolist())), Counter(z.tolist())
    h = -sum(cnt / n * math.log(cnt / zs[zz]) for (yy, zz), cnt in pairs.items())
    assert nce_score(x, y, source_probs=p) == pytest.approx(-h, rel=1e-12)
    # source label determines the target label -> 0
    p_det = np.eye(4)[y]
    assert nce_score(x, y, source_probs=p_det) == pytest.approx(0.0, abs=1e-15)


# ----------------------------------------------------------------------------- TransRate
def test_transrate_matches_logdet_formulas():
    x, y, _ = make_data(n=45, d=20, k=3, sep=1.0)   # classes of 15 < D=20: n x n path used
    eps = 1e-4
    z = x - x.mean(axis=0)

    def rate(m):
        n, d = m.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + m.T @ m / (n * eps))[1]

    direct = rate(z) - np.mean([rate(z[y == c]) for c in range(3)])
    assert transrate_score(x, y) == pytest.approx(direct, rel=1e-10)
    x2, y2, _ = make_data(n=200, d=5, k=4, sep=1.0)
    z2 = x2 - x2.mean(axis=0)
    direct2 = rate(z2) - np.mean([rate(z2[y2 == c]) for c in range(4)])
    assert transrate_score(x2, y2, eps=eps) == pytest.approx(direct2, rel=1e-10)


# ----------------------------------------------------------------------------- kNN
def _brute_knn(x, y, k, normalize, queries=None):
    if normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(y)
    correct = []
    for i in (range(n) if queries is None else queries):
        if normalize:
            d = [-(x[i] @ x[j]) for j in range(n)]
        else:
            d = [float(np.sum((x[i] - x[j]) ** 2)) for j in range(n)]
        d[i] = np.inf
        nbrs = sorted(range(n), key=lambda j: d[j])[:k]
        votes = Counter(y[j] for j in nbrs)
        best = max(votes.values())
        pred = next(y[j] for j in nbrs if votes[y[j]] == best)  # tie -> nearest tied class
        correct.append(pred == y[i])
    return float(np.mean(correct))


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("k", [1, 4, 7])
def test_knn_matches_brute_force(normalize, k):
    x, y, _ = make_data(n=60, d=5, k=3, sep=0.7, seed=3)
    assert knn_score(x, y, k=k, normalize=normalize, max_queries=None) == pytest.approx(
        _brute_knn(x, y, k, normalize))


def test_knn_query_subset():
    x, y, _ = make_data(n=90, d=5, k=3, sep=0.7, seed=4)
    q = np.sort(stratified_subsample(x, y, 30, random_state=1, min_per_class=1,
                                     canonical_order=False))
    assert len(q) == 30 and np.all(np.bincount(y[q]) == 10)
    # the query subset follows the samples' identities, not their positions
    perm = np.random.default_rng(0).permutation(90)
    assert knn_score(x[perm], y[perm], k=5, max_queries=30, random_state=1, sample_ids=perm) == pytest.approx(
        knn_score(x, y, k=5, max_queries=30, random_state=1))
    assert knn_score(x, y, k=5, max_queries=30, random_state=1) == pytest.approx(
        _brute_knn(x, y, 5, True, queries=q))


# ----------------------------------------------------------------------------- LFC
def _explicit_alignment(x, y):
    n = len(y)
    h = np.eye(n) - 1.0 / n
    kc = h @ (x @ x.T) @ h
    lab = np.where(y[:, None] == y[None, :], 1.0, -1.0)
    yc = h @ lab @ h
    return np.sum(kc * yc) / (np.linalg.norm(kc) * np.linalg.norm(yc))


@pytest.mark.parametrize("n,d", [(90, 6), (30, 50)])
def test_lfc_exact_matches_explicit_alignment(n, d):
    x, y, _ = make_data(n=n, d=d, k=3, sep=1.0)
    assert lfc_score(x, y) == pytest.approx(_explicit_alignment(x, y), rel=1e-10)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert lfc_score(x, y, normalize=True) == pytest.approx(_explicit_alignment(xn, y), rel=1e-10)


def test_lfc_explicit_path_uses_kernel_alignment():
    pytest.importorskip("zoorank.metrics.kernel_alignment")
    x, y, _ = make_data(n=90, d=6, k=3, sep=1.0)
    assert lfc_score(x, y, method="explicit") == pytest.approx(lfc_score(x, y), rel=1e-9)
    sub = lfc_score(x, y, method="explicit", max_samples=45, random_state=2)
    idx = stratified_subsample(x, y, 45, random_state=2, min_per_class=1, canonical_order=False)
    assert sub == pytest.approx(lfc_exact(x[idx], y[idx], 3), rel=1e-9)
    with pytest.raises(ValueError, match="method"):
        lfc_score(x, y, method="bogus")
    const = np.ones_like(x)
    for method in ("exact", "explicit"):
        with pytest.raises(ValueError, match="constant"):
            lfc_score(const, y, method=method)


# ----------------------------------------------------------------------------- N-LEEP
def test_nleep_pca_and_perfect_clusters():
    x, y, _ = make_data(n=100, d=10, k=4, sep=8.0)
    from sklearn.decomposition import PCA
    ref = PCA(n_components=0.8, svd_solver="full").fit(x)
    assert pca_reduce(x, 0.8).shape[1] == ref.n_components_
    # one well-separated Gaussian per class: posteriors are one-hot -> log-likelihood ~ 0
    assert nleep_score(x, y, n_components_per_class=1) == pytest.approx(0.0, abs=1e-6)
    assert nleep_score(x, y, n_components_per_class=1, log=False) == pytest.approx(1.0, abs=1e-6)
    # the paper's 5K components are capped at N
    xs, ys, _ = make_data(n=8, d=3, k=4, sep=1.0)
    assert np.isfinite(nleep_score(xs, ys))


# ----------------------------------------------------------------------------- common properties
@pytest.mark.parametrize("name", sorted(METRICS))
def test_invariant_to_sample_order(name):
    x, y, p = make_data(n=120, d=8, k=4, sep=1.5, seed=5)
    perm = np.random.default_rng(1).permutation(len(y))
    a = METRICS[name](x, y, p)
    b = METRICS[name](x[perm], y[perm], p[perm], perm)      # row i is original sample perm[i]
    assert b == pytest.approx(a, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_invariant_to_relabelling(name):
    x, y, p = make_data(n=120, d=8, k=4, sep=1.5, seed=6)
    relabel = np.array([7, 2, 11, 0])[y]          # permuted, non-contiguous class ids
    a = METRICS[name](x, y, p)
    b = METRICS[name](x, relabel, p)
    assert b == pytest.approx(a, rel=1e-9, abs=1e-12)
    strings = np.array(["d", "b", "a", "c"])[y]
    assert METRICS[name](x, strings, p) == pytest.approx(a, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_separated_features_beat_shuffled_labels(name):
    x, y, p = make_data(n=160, d=8, k=4, sep=2.0, seed=7)
    shuffled = np.random.default_rng(0).permutation(y)
    assert METRICS[name](x, y, p) > METRICS[name](x, shuffled, p)


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("d", [5, 64])
def test_two_samples_per_class(name, d):
    x, y, p = make_data(n=20, d=d, k=10, sep=1.0, seed=8)
    assert np.bincount(y).tolist() == [2] * 10
    try:
        value = METRICS[name](x, y, p)
    except ValueError as exc:          # allowed, if it says why
        assert str(exc)
    else:
        assert np.isfinite(value)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_rejects_nan_features(name):
    x, y, p = make_data(n=30, k=3)
    clean = METRICS[name](x, y, p)
    x[4, 2] = np.nan
    if name in ("leep", "nce"):
        # they never read the feature values (only their shape): same score, no error
        assert METRICS[name](x, y, p) == clean
        with pytest.raises(ValueError, match="features has 29 rows"):
            METRICS[name](x[:-1], y, p)
        return
    with pytest.raises(ValueError, match="features"):
        METRICS[name](x, y, p)
    x[4, 2] = np.inf
    with pytest.raises(ValueError, match="features contains NaN or inf in 1 row"):
        METRICS[name](x, y, p)


@pytest.mark.parametrize("fn", [leep_score, nce_score])
def test_rejects_bad_source_probs(fn):
    x, y, p = make_data(n=30, k=3)
    with pytest.raises(ValueError, match="source_probs"):
        fn(x, y, source_probs=p[:-1])
    with pytest.raises(ValueError, match="source_probs"):
        fn(x, y, source_probs=np.log(p))          # logits, not probabilities
    with pytest.raises(ValueError, match="source_probs"):
        fn(x, y, source_probs=p * 2)              # rows do not sum to 1


def test_rejects_bad_parameters_and_labels():
    x, y, p = make_data(n=30, k=3)
    with pytest.raises(ValueError, match="labels"):
        logme_score(x, y[:-1])
    with pytest.raises(ValueError, match="class"):
        hscore(x, np.zeros(30, dtype=int))
    with pytest.raises(ValueError, match="k must"):
        knn_score(x, y, k=0)
    with pytest.raises(ValueError, match="eps"):
        transrate_score(x, y, eps=0)
    with pytest.raises(ValueError, match="n_components_per_class"):
        nleep_score(x, y, n_components_per_class=0)


# ----------------------------------------------------------------------------- speed/memory paths (#17)
from zoorank.metrics import _blocked  # noqa: E402
from zoorank.metrics.nce import nce_from_labels  # noqa: E402
from zoorank.metrics.validation import (check_matrix, encode_labels,  # noqa: E402
                                        probability_rows)

_BLOCKED = ["logme", "leep", "nce", "hscore", "reg_hscore", "transrate"]


@pytest.mark.parametrize("name", _BLOCKED)
def test_many_blocks_equal_one_block(name, monkeypatch):
    """The chunked float64 accumulation only reorders additions: with 64-entry blocks
    (dozens of blocks, class runs split across them) the value equals the one-block value
    to rounding (relative 1e-12 on these well-conditioned data)."""
    x, y, p = make_data(n=150, d=9, k=4, c=7, sep=1.0, seed=11)
    one = METRICS[name](x, y, p)
    monkeypatch.setattr(_blocked, "BLOCK_ELEMS", 64)
    monkeypatch.setattr(_blocked, "GRAM_BLOCK_ELEMS", 64)
    monkeypatch.setattr(_blocked, "MATMUL_BLOCK_ELEMS", 64)
    assert METRICS[name](x, y, p) == pytest.approx(one, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("name", ["logme", "leep", "nce", "hscore", "reg_hscore"])
def test_float32_input_is_accumulated_in_float64(name):
    """float32 features / probabilities are no longer upcast whole, but every statistic is
    still accumulated in float64 from the same values: the result equals the float64
    computation on the upcast arrays to rounding."""
    x, y, p = make_data(n=140, d=7, k=4, c=6, sep=1.0, seed=12)
    x32, p32 = x.astype(np.float32), p.astype(np.float32)
    p32 /= p32.sum(axis=1, keepdims=True)
    a = METRICS[name](x32, y, p32)
    b = METRICS[name](x32.astype(np.float64), y, p32.astype(np.float64))
    assert a == pytest.approx(b, rel=1e-10, abs=1e-12)


def test_transrate_float32_precision_as_reference():
    """precision="auto" takes float32 Gram blocks for float32 features (the reference's
    precision). Each Gram entry is then a float32 sum of n products: relative error at
    most ~n * 2**-24 (7e-6 for n=120, a worst-case bound), which moves each log-determinant
    by at most d times that relative to its size; precision="float64" is exact."""
    x, y, _ = make_data(n=120, d=8, k=4, sep=1.0, seed=13)
    x32 = x.astype(np.float32)
    exact = transrate_score(x32.astype(np.float64), y)
    assert transrate_score(x32, y, precision="float64") == pytest.approx(exact, rel=1e-12)
    assert transrate_score(x32, y) == pytest.approx(exact, rel=8 * 120 * 2.0 ** -24)
    with pytest.raises(ValueError, match="precision"):
        transrate_score(x, y, precision="half")


def test_transrate_small_class_gram_path():
    """d <= N (the d x d total Gram is formed) but classes of 15 < d/2 = 20: their rates
    go through the n_k x n_k Gram; still the direct log-determinant formula."""
    x, y, _ = make_data(n=60, d=40, k=4, sep=1.0, seed=14)
    z = x - x.mean(axis=0)

    def rate(m):
        n, d = m.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + m.T @ m / (n * 1e-4))[1]

    direct = rate(z) - np.mean([rate(z[y == c]) for c in range(4)])
    assert transrate_score(x, y) == pytest.approx(direct, rel=1e-10)


def test_validation_reads_without_copying():
    x, y, p = make_data(n=50, d=6, k=3, c=5)
    x32, p32 = x.astype(np.float32), p.astype(np.float32)
    assert check_matrix(x32, name="features", dtype=None) is x32
    assert check_matrix(x, name="features", dtype=None) is x
    assert check_matrix(x32, name="features").dtype == np.float64   # the default upcasts
    got, sums = probability_rows(p32, name="source_probs", n_rows=50)
    assert got is p32
    assert np.allclose(sums, p32.astype(np.float64).sum(axis=1), rtol=1e-6)
    _, _, top = probability_rows(p32, name="source_probs", n_rows=50, argmax=True)
    assert np.array_equal(top, np.argmax(p32, axis=1))


def test_finite_check_is_exact():
    """The fast check sums rows; finite values whose row sum overflows are not flagged,
    and the error counts the rows that really hold NaN or inf."""
    x = np.ones((6, 4), dtype=np.float32)
    x[2] = 3e38                                       # finite, row sum overflows float32
    assert check_matrix(x, name="features", dtype=None) is x
    x[4, 1], x[5, 0] = np.inf, np.nan
    with pytest.raises(ValueError, match="features contains NaN or inf in 2 row"):
        check_matrix(x, name="features", dtype=None)
    with pytest.raises(ValueError, match="source_probs contains NaN"):
        probability_rows(np.array([[0.5, np.nan]]), name="source_probs", n_rows=1)
    with pytest.raises(ValueError, match="source_probs rows must sum to 1"):
        probability_rows(np.array([[0.5, np.inf]]), name="source_probs", n_rows=1)


@pytest.mark.parametrize("labels", [
    np.array([5, 0, 9, 5, 9, 0, 2]),                  # gaps: bincount fast path
    np.array([3, 1, 3, 1], dtype=np.uint8),
    np.array([-4, 7, -4, 2]),                         # negative: np.unique path
    np.array([10**12, 3, 10**12]),                    # huge ids: np.unique path
])
def test_label_encoding_matches_unique(labels):
    codes, classes = encode_labels(labels)
    ref_classes, ref_codes = np.unique(labels, return_inverse=True)
    assert np.array_equal(codes, ref_codes) and np.array_equal(classes, ref_classes)
    assert classes.dtype == ref_classes.dtype


def test_nce_sparse_source_ids_equal_compact_ids():
    rng = np.random.default_rng(3)
    src, tgt = rng.integers(0, 6, 80), rng.integers(0, 3, 80)
    assert nce_from_labels(src * 10**9 + 7, tgt, 3) == pytest.approx(
        nce_from_labels(src, tgt, 3), rel=1e-15)


def test_pair_stats_memo_shares_the_covariance():
    """One PairStats per pair: H-score, regularised H-score and LogME give their own values
    (LogME's F^T F = N (cov + mu mu^T) agrees with the direct Gram to rounding) while the
    covariance is computed once; a memo of other arrays is refused."""
    from zoorank.metrics._shared import PairStats
    x, y, _ = make_data(n=200, d=9, k=4, sep=1.0, seed=15)
    stats = PairStats(x, y)
    assert hscore(x, y, stats=stats) == pytest.approx(hscore(x, y), rel=1e-12)
    assert regularized_hscore(x, y, stats=stats) == pytest.approx(regularized_hscore(x, y), rel=1e-12)
    assert logme_score(x, y, stats=stats) == pytest.approx(logme_score(x, y), rel=1e-10)
    assert stats.computed == ["class_stats", "centred_cov"]
    with pytest.raises(ValueError, match="stats: this PairStats memo was made for other"):
        hscore(x.copy(), y, stats=stats)


def test_score_all_shares_one_memo_per_pair():
    from zoorank.metrics import registry
    from zoorank.metrics._shared import PairStats
    x, y, p = make_data(n=150, d=6, k=3, c=5, sep=1.0, seed=16)
    names = ["logme", "hscore", "reg_hscore", "leep", "transrate"]
    memo = PairStats(x, y)
    shared = registry.score_all(x, y, names, errors="raise", source_probs=p, stats=memo)
    assert memo.computed == ["class_stats", "centred_cov"]     # once for the three users
    for name in names:
        alone = registry.score(name, x, y, source_probs=p)
        assert shared[name] == pytest.approx(alone, rel=1e-10)
    assert registry.score_all(x, y, names, errors="raise", source_probs=p) == pytest.approx(shared, rel=1e-12)
