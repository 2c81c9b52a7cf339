"""Baselines B: PARC, GBC, SFDA, PED, ETran, PACTran (and their shared helpers).

Each metric is checked against an independent formulation (explicit loops, numerical
integration, scipy's generalised eigensolver, a direct scipy minimisation) on small
synthetic data, plus invariances (sample order, class relabelling), separability,
low-data behaviour (N/K = 2) and input validation.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.optimize
from scipy import stats
from scipy.special import logsumexp

from zoorank.metrics import registry
from zoorank.metrics._common import (class_mean_var, pca_reduce, sample_keys,
                                     stratified_subsample, within_class_scatter)
from zoorank.metrics.etran import etran_combine, etran_components, etran_score
from zoorank.metrics.gbc import bhattacharyya_distance, gbc_score
from zoorank.metrics.pactran import pactran_objective, pactran_score
from zoorank.metrics.parc import parc_score, spearman_binary
from zoorank.metrics.ped import ped_move, ped_score
from zoorank.metrics.sfda import (fda_projection, power_top_eigenvalue, regularized_lda,
                                  sfda_score)
from zoorank.metrics.validation import one_hot


def make_blobs(n=150, d=12, k=4, sep=2.0, seed=0, positive=False):
    """Balanced Gaussian blobs; ``positive`` gives ReLU-like non-negative features."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    rng.shuffle(y)
    x = rng.normal(size=(k, d))[y] * sep + rng.normal(size=(n, d))
    if positive:
        x = np.abs(x)
    return x, y


METRICS = {
    "parc": lambda x, y: parc_score(x, y),
    "gbc": lambda x, y: gbc_score(x, y),
    "sfda": lambda x, y: sfda_score(x, y),
    "ped": lambda x, y: ped_score(x, y),
    "etran": lambda x, y: etran_score(x, y),
    "pactran": lambda x, y: pactran_score(x, y),
}


# ============================================================================ helpers
def test_sample_keys_depend_on_identity_only():
    ids = np.arange(1000, 1050)
    perm = np.random.default_rng(1).permutation(50)
    k1, k2 = sample_keys(50, ids, 3), sample_keys(50, ids[perm], 3)
    assert np.array_equal(k1[perm], k2)                 # a key travels with its sample
    assert len(np.unique(k1)) == 50
    assert not np.array_equal(sample_keys(50, ids, 3), sample_keys(50, ids, 4))
    assert np.array_equal(sample_keys(50, None, 3), sample_keys(50, np.arange(50), 3))
    with pytest.raises(ValueError, match="distinct"):
        sample_keys(3, np.array([1, 1, 2]))
    with pytest.raises(ValueError, match="shape"):
        sample_keys(3, np.arange(4))
    with pytest.raises(ValueError, match="integers"):
        sample_keys(2, np.array([0.5, 1.0]))


def test_stratified_subsample_counts_and_order_independence():
    x, y = make_blobs(n=400, d=5, k=4)
    y = np.where(np.arange(400) < 40, 0, y)            # unbalanced: class 0 is larger
    idx = stratified_subsample(x, y, 100, random_state=0)
    counts = np.bincount(y)
    assert np.array_equal(np.bincount(y[idx], minlength=4), np.floor(counts * 100 / 400).astype(int))
    perm = np.random.default_rng(2).permutation(400)
    idx2 = stratified_subsample(x[perm], y[perm], 100, random_state=0, sample_ids=perm)
    # same rows, same (canonical) order
    assert np.array_equal(x[idx], x[perm][idx2]) and np.array_equal(y[idx], y[perm][idx2])
    # tiny classes keep min(n_k, 2) rows
    y_small = y.copy()
    y_small[:1] = 9
    idx3 = stratified_subsample(x, y_small, 50, random_state=0)
    assert 9 in y_small[idx3]
    assert len(stratified_subsample(x, y, None)) == 400


def test_pca_reduce_full_matches_svd_and_sign_rule():
    rng = np.random.default_rng(0)
    for n, d in [(80, 10), (12, 40)]:                    # covariance path and Gram path
        x = rng.normal(size=(n, d)) * np.linspace(3, 0.5, d)
        z = pca_reduce(x, 4, solver="full")
        xc = x - x.mean(0)
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        ref = xc @ vt[:4].T
        assert np.allclose(np.abs(z), np.abs(ref), atol=1e-8)
        assert np.allclose(np.var(z, axis=0) * n, s[:4] ** 2)
        perm = rng.permutation(n)
        assert np.allclose(pca_reduce(x[perm], 4, solver="full"), z[perm], atol=1e-8)


def test_class_stats_and_within_scatter_match_loops():
    x, y = make_blobs(n=60, d=5, k=3)
    means, var, counts = class_mean_var(x, y, 3)
    sw = np.zeros((5, 5))
    for c in range(3):
        xc = x[y == c]
        assert np.allclose(means[c], xc.mean(0)) and np.allclose(var[c], xc.var(0))
        sw += len(xc) / 60 * np.cov(xc.T, bias=True)
    assert np.allclose(within_class_scatter(x, y, 3), sw)
    assert np.array_equal(counts, np.bincount(y))


# ============================================================================ PARC
def test_spearman_binary_matches_scipy_including_ties():
    rng = np.random.default_rng(0)
    for trial in range(6):
        m0, m1 = rng.integers(1, 40), rng.integers(1, 60)
        vals = rng.normal(size=m0 + m1)
        if trial % 2:
            vals = np.round(vals, 1)                   # many ties, also across groups
        ind = np.r_[np.zeros(m0), np.ones(m1)]
        expected = stats.spearmanr(vals, ind)[0]
        got = spearman_binary(vals[:m0].copy(), vals[m0:].copy())
        assert got == pytest.approx(expected, abs=1e-12)


def _parc_by_loops(x, y):
    """PARC without PCA by explicit loops: standardise columns, Pearson between rows,
    1 - corr dissimilarities for features and one-hot labels, Spearman of upper triangles."""
    n = len(y)
    z = (x - x.mean(0)) / x.std(0)
    k = y.max() + 1
    lab = np.eye(k)[y]

    def pearson(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float(a @ b / math.sqrt((a @ a) * (b @ b)))

    df, dy = [], []
    for i in range(n):
        for j in range(i + 1, n):
            df.append(1 - pearson(z[i], z[j]))
            dy.append(round(1 - pearson(lab[i], lab[j]), 12))
    return 100 * stats.spearmanr(df, dy)[0]


def test_parc_matches_explicit_loops():
    x, y = make_blobs(n=30, d=6, k=3, sep=1.0, seed=3)
    assert parc_score(x, y, n_dims=None, max_samples=None) == pytest.approx(_parc_by_loops(x, y), abs=1e-9)
    # with the PCA step: the loop formulation applied to the exact PCA scores
    z = pca_reduce(x, 4, solver="full")
    assert parc_score(x, y, n_dims=4, pca_solver="full", max_samples=None) == pytest.approx(
        _parc_by_loops(z, y), abs=1e-9)


def test_parc_exactly_invariant_with_subsampling():
    x, y = make_blobs(n=300, d=40, k=5, sep=0.7, seed=4)
    base = parc_score(x, y, max_samples=120, random_state=7)
    perm = np.random.default_rng(0).permutation(300)
    assert parc_score(x[perm], y[perm], max_samples=120, random_state=7, sample_ids=perm) == base
    relabel = np.array(["e", "d", "c", "b", "a"])[y]
    assert parc_score(x, relabel, max_samples=120, random_state=7) == base
    assert parc_score(x, y, max_samples=120, random_state=8) != base   # the seed matters


# ============================================================================ GBC
def test_bhattacharyya_coefficient_matches_numerical_integration():
    for m1, v1, m2, v2 in [(0.0, 1.0, 1.0, 1.0), (-0.5, 0.3, 1.2, 2.0), (2.0, 0.05, 2.1, 0.5)]:
        def integrand(t):
            p = stats.norm.pdf(t, m1, math.sqrt(v1))
            q = stats.norm.pdf(t, m2, math.sqrt(v2))
            return math.sqrt(p * q)
        bc, _ = scipy.integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13)
        assert math.exp(-bhattacharyya_distance(m1, v1, m2, v2)) == pytest.approx(bc, rel=1e-8)


def test_gbc_one_dimensional_two_classes_by_integration():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0.0, 1.0, 40), rng.normal(1.5, 0.7, 60)
    x = np.r_[a, b][:, None]
    y = np.r_[np.zeros(40, int), np.ones(60, int)]
    m1, v1, m2, v2 = a.mean(), a.var(), b.mean(), b.var()
    bc, _ = scipy.integrate.quad(
        lambda t: math.sqrt(stats.norm.pdf(t, m1, math.sqrt(v1)) * stats.norm.pdf(t, m2, math.sqrt(v2))),
        -np.inf, np.inf, epsabs=1e-13)
    for kind in ("spherical", "diagonal"):
        # both ordered pairs are counted, and 1-D PCA only centres (and maybe flips) x
        assert gbc_score(x, y, gaussian_type=kind) == pytest.approx(-2 * bc, rel=1e-8)
        assert gbc_score(x, y, gaussian_type=kind, n_components=None) == pytest.approx(-2 * bc, rel=1e-8)


def test_gbc_spherical_logdet_variants():
    # per-class samples mu_c + s_c * H, H with zero column means and unit column variances:
    # every dimension of class c has variance exactly s_c^2, so spherical == diagonal
    # with the exact log-determinant, while the reference variant drops the factor D.
    h = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
    mus = np.array([[0, 0, 0], [1, 2, 0.5], [3, -1, 1]])
    x = np.vstack([mus[c] + s * h for c, s in enumerate([0.5, 1.0, 2.0])])
    y = np.repeat(np.arange(3), 4)
    diag = gbc_score(x, y, gaussian_type="diagonal", n_components=None)
    exact = gbc_score(x, y, gaussian_type="spherical", spherical_logdet="exact", n_components=None)
    ref = gbc_score(x, y, gaussian_type="spherical", n_components=None)
    assert exact == pytest.approx(diag, rel=1e-12)
    expected_ref = 0.0
    var = np.array([0.25, 1.0, 4.0])
    for i in range(3):
        for j in range(3):
            if i != j:
                s = (var[i] + var[j]) / 2
                dist = np.sum((mus[i] - mus[j]) ** 2) / s / 8 + 0.5 * (
                    math.log(s) - 0.5 * math.log(var[i]) - 0.5 * math.log(var[j]))
                expected_ref -= math.exp(-dist)
    assert ref == pytest.approx(expected_ref, rel=1e-12)
    assert ref != pytest.approx(exact)


def test_gbc_bounds():
    x, y = make_blobs(n=200, d=10, k=5, sep=0.0)
    overlap = gbc_score(x * 1e-3, y)
    assert -20 < overlap < -20 * 0.8                       # near -K(K-1)
    far, yf = make_blobs(n=200, d=10, k=5, sep=1000.0)
    assert gbc_score(far, yf) == pytest.approx(0.0, abs=1e-12)


# ============================================================================ SFDA
def _shrunk(c, s):
    return (1 - s) * c + s * np.trace(c) / c.shape[0] * np.eye(c.shape[0])


def test_fda_projection_matches_scipy_generalised_eigh():
    x, y = make_blobs(n=120, d=6, k=4, sep=1.0, seed=1)
    s = 0.05
    sw = sum(np.mean(y == c) * np.cov(x[y == c].T, bias=True) for c in range(4))
    st = np.cov(x.T, bias=True)
    sw_s, sb = _shrunk(sw, s), _shrunk(st, s) - _shrunk(sw, s)
    vals_ref, vecs_ref = scipy.linalg.eigh(sb, sw_s)
    vals_ref, vecs_ref = vals_ref[::-1], vecs_ref[:, ::-1]
    vals, w = fda_projection(x, y, shrinkage=s)
    assert np.allclose(vals, vals_ref, atol=1e-10)
    assert np.allclose(w.T @ sw_s @ w, np.eye(6), atol=1e-9)
    # distinct eigenvalues: the same directions up to sign
    assert np.allclose(np.abs(np.diag(w.T @ sw_s @ vecs_ref)), 1, atol=1e-8)
    # projection on all D directions = Sw_s^{-1}, the LDA used by the score
    coef, _, _ = regularized_lda(x, y, 4, shrinkage=s)
    means = np.stack([x[y == c].mean(0) for c in range(4)])
    assert np.allclose(coef, means @ vecs_ref @ vecs_ref.T, atol=1e-9)


def _sfda_independent(x, y, k, s):
    """SFDA written from the paper's steps with scipy's generalised eigensolver."""
    def lda_probs(x, s):
        n = len(y)
        pri = np.bincount(y) / n
        means = np.stack([x[y == c].mean(0) for c in range(k)])
        sw = sum(pri[c] * np.cov(x[y == c].T, bias=True) for c in range(k))
        sw_s = _shrunk(sw, s)
        sb = _shrunk(np.cov(x.T, bias=True), s) - sw_s
        _, vecs = scipy.linalg.eigh(sb, sw_s)
        coef = means @ vecs @ vecs.T
        logits = x @ coef.T - 0.5 * np.sum(means * coef, 1) + np.log(pri)
        p = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        return p, s, means

    p, s, means = lda_probs(x, s)
    q = np.exp(p) / np.exp(p).sum(1, keepdims=True)
    x2 = x.copy()
    for i in range(len(y)):
        other = np.mean([means[c] for c in range(k) if c != y[i]], axis=0)
        x2[i] = q[i, y[i]] * x[i] + (1 - q[i, y[i]]) * other
    p2, _, _ = lda_probs(x2, s)
    return float(np.mean(p2[np.arange(len(y)), y]))


def test_sfda_matches_independent_formulation():
    for seed, s in [(0, 0.3), (1, 1e-10), (2, 0.9)]:
        x, y = make_blobs(n=90, d=5, k=3, sep=0.8, seed=seed)
        assert sfda_score(x, y, shrinkage=s) == pytest.approx(_sfda_independent(x, y, 3, s), rel=1e-9)


def test_sfda_automatic_shrinkage_uses_power_iteration():
    # small scale so that exp(-5 lambda_max) is not floored at 1e-10
    x, y = make_blobs(n=90, d=5, k=3, sep=0.8, seed=4)
    x = x * 0.2
    sw = within_class_scatter(x, y, 3)
    s = max(math.exp(-5 * power_top_eigenvalue(sw, 3)), 1e-10)
    assert 1e-3 < s < 1
    assert regularized_lda(x, y, 3)[2] == pytest.approx(s, rel=1e-12)
    assert sfda_score(x, y) == pytest.approx(_sfda_independent(x, y, 3, s), rel=1e-9)
    assert power_top_eigenvalue(sw, 3) <= np.linalg.eigvalsh(sw)[-1] * (1 + 1e-12)   # Rayleigh bound


def test_power_iteration_and_log_prob_variant():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    a = q @ np.diag([10.0, 1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]) @ q.T
    assert power_top_eigenvalue(a, 3) == pytest.approx(10.0, rel=1e-5)
    x, y = make_blobs(n=100, d=6, k=3, sep=0.5)
    p, lp = sfda_score(x, y), sfda_score(x, y, score="log_prob")
    assert lp < math.log(p)                              # Jensen
    with pytest.raises(ValueError, match="score"):
        sfda_score(x, y, score="nope")


# ============================================================================ PED
def _ped_by_loops(x, y, k, time_step=0.1, nsigma=0.6, exit_ratio=0.5, max_steps=6):
    """The literal dynamics: recompute class statistics from the moved features every step,
    loop over class pairs."""
    center, scale = x.mean(0), np.maximum(x.std(0), 1e-3)
    z = (x - center) / scale
    first = None
    for _ in range(max_steps):
        means = [z[y == c].mean(0) for c in range(k)]
        rad = [math.sqrt(z[y == c].var(0).sum()) for c in range(k)]
        move = np.zeros((k, x.shape[1]))
        for a in range(k):
            for b in range(k):
                if a == b:
                    continue
                d = np.linalg.norm(means[a] - means[b])
                f = max(nsigma * (rad[a] + rad[b]) - d, 0.0)
                move[a] += (means[a] - means[b]) / d * min(0.5 * time_step ** 2 * f, f)
        change = np.abs(move).sum()
        if first is None:
            first = change
        elif change / first <= exit_ratio:
            break
        z = z + move[y]
    return z * scale + center


def test_ped_move_matches_literal_dynamics():
    x, y = make_blobs(n=120, d=6, k=4, sep=0.3, seed=2, positive=True)
    for ts in (0.1, 1.0):
        moved = ped_move(x, y, time_step=ts)
        assert np.allclose(moved, _ped_by_loops(x, y, 4, time_step=ts), atol=1e-10)
        assert np.abs(moved - x).max() > 1e-3              # the classes did move
    assert ped_score(x, y) == pytest.approx(sfda_score(ped_move(x, y), y), rel=1e-12)


def test_ped_without_overlap_is_sfda():
    x, y = make_blobs(n=80, d=4, k=4, sep=200.0)
    # nothing overlaps, nothing moves: the features come back exactly (x + 0 * scale)
    assert np.array_equal(ped_move(x, y), x)
    assert ped_score(x, y) == pytest.approx(sfda_score(x, y), rel=1e-9)


def test_ped_reference_features_change_the_scaling():
    x, y = make_blobs(n=100, d=5, k=3, sep=0.3, positive=True)
    ref = np.random.default_rng(9).normal(size=(50, 5)) * 3
    assert not np.allclose(ped_move(x, y, reference_features=ref), ped_move(x, y))
    with pytest.raises(ValueError, match="reference_features"):
        ped_move(x, y, reference_features=ref[:, :3])


# ============================================================================ ETran
def test_etran_energy_and_lda_by_hand():
    x, y = make_blobs(n=40, d=5, k=3, sep=1.0, positive=True)
    energies = sorted(math.log(sum(math.exp(v) for v in row)) for row in x)
    n_low = 8                                             # 20 % of 40
    comps = etran_components(x, y, energy_fraction=0.2)
    assert comps["energy"] == pytest.approx(sum(energies[:n_low]) / n_low, rel=1e-12)
    assert etran_components(x, y, energy_fraction=1.0)["energy"] == pytest.approx(np.mean(energies))
    top = etran_components(x, y, energy_fraction=0.2, energy_tail="top")["energy"]
    assert top == pytest.approx(sum(energies[-n_low:]) / n_low)
    # default 0.5 % of 40 samples rounds to 0: at least one sample is used
    assert etran_components(x, y)["energy"] == pytest.approx(energies[0])
    t = 2.0
    e_t = sorted(t * math.log(sum(math.exp(v / t) for v in row)) for row in x)
    assert etran_components(x, y, energy_fraction=1.0, temperature=t)["energy"] == pytest.approx(np.mean(e_t))

    # identity-covariance LDA posterior of the true class, sample by sample
    means = [x[y == c].mean(0) for c in range(3)]
    pri = [np.mean(y == c) for c in range(3)]
    probs = []
    for i in range(40):
        logits = [x[i] @ means[c] - 0.5 * means[c] @ means[c] + math.log(pri[c]) for c in range(3)]
        probs.append(math.exp(logits[y[i]] - logsumexp(logits)))
    assert comps["lda"] == pytest.approx(np.mean(probs), rel=1e-12)
    assert etran_score(x, y, energy_fraction=0.2) == pytest.approx(comps["energy"] + comps["lda"])
    assert etran_score(x, y, energy_fraction=0.2, energy_weight=0.0) == pytest.approx(comps["lda"])
    # the "shrunk" LDA is SFDA's first-stage classifier
    shrunk = etran_components(x, y, lda_covariance="shrunk")["lda"]
    assert shrunk == pytest.approx(sfda_score(x, y, confmix=False), rel=1e-12)


def test_etran_combine_min_max():
    comps = {"a": {"energy": 1.0, "lda": 0.5}, "b": {"energy": 3.0, "lda": 0.1},
             "c": {"energy": 2.0, "lda": 0.3}}
    out = etran_combine(comps)
    assert out == pytest.approx({"a": 0.85, "b": 0.15, "c": 0.5 * 0.15 + 0.5 * 0.85})
    const = etran_combine({"a": {"energy": 1.0, "lda": 0.2}, "b": {"energy": 1.0, "lda": 0.4}})
    assert const == pytest.approx({"a": 0.0, "b": 0.85})
    with pytest.raises(ValueError, match="lda"):
        etran_combine({"a": {"energy": 1.0}})


# ============================================================================ PACTran
def _pactran_direct(x, y, k, lda_factor=1.0, s2_factor=100.0):
    """Minimise the PACTran objective with a generic optimiser (numerical gradients) and
    evaluate the bound with an explicit Hessian-diagonal loop."""
    n, d = x.shape
    xc = x - x.mean(0)
    lam = lda_factor * n

    def obj(theta):
        w = theta[: d * k].reshape(d, k)
        logits = xc @ w + theta[d * k:]
        return np.mean(logsumexp(logits, axis=1) - logits[np.arange(n), y]) + 0.5 * np.sum(w ** 2) / lam

    res = scipy.optimize.minimize(obj, np.zeros(d * k + k), method="BFGS",
                                  options={"gtol": 1e-10, "maxiter": 10000})
    w = res.x[: d * k].reshape(d, k)
    b = res.x[d * k:]
    h = 0.0
    for i in range(n):
        logits = xc[i] @ w + b
        p = np.exp(logits - logsumexp(logits))
        for j in range(k):
            h += (np.sum(xc[i] ** 2) + 1.0) * p[j] * (1 - p[j])   # W block and bias
    h += d * k / lam
    sigma2_inv = h * lam / (d * k) + 1e-10
    return -(res.fun + 0.5 * d * k / lam * (s2_factor / d) * math.log(sigma2_inv))


def test_pactran_matches_direct_minimisation():
    x, y = make_blobs(n=30, d=3, k=3, sep=0.7, seed=1)
    # the generic optimiser uses finite-difference gradients: agreement to ~1e-7 relative
    assert pactran_score(x, y) == pytest.approx(_pactran_direct(x, y, 3), rel=1e-6)
    assert pactran_score(x, y, lda_factor=10.0) == pytest.approx(
        _pactran_direct(x, y, 3, lda_factor=10.0, s2_factor=1000.0), rel=1e-6)


def test_pactran_row_space_path_when_n_below_d():
    x, y = make_blobs(n=8, d=12, k=2, sep=0.3, seed=2)
    assert pactran_score(x, y) == pytest.approx(_pactran_direct(x, y, 2), rel=1e-6)


def test_pactran_objective_gradient():
    x, y = make_blobs(n=25, d=4, k=3)
    fun = pactran_objective(x - x.mean(0), one_hot(y, 3), 25.0)
    theta = np.random.default_rng(0).normal(size=4 * 3 + 3) * 0.3
    err = scipy.optimize.check_grad(lambda t: fun(t)[0], lambda t: fun(t)[1], theta)
    assert err < 1e-6


# ============================================================================ all metrics
@pytest.mark.parametrize("name", list(METRICS))
def test_invariant_to_sample_order(name):
    x, y = make_blobs(n=150, d=12, k=4, sep=0.6, seed=11, positive=True)
    perm = np.random.default_rng(3).permutation(len(y))
    a, b = METRICS[name](x, y), METRICS[name](x[perm], y[perm])
    assert b == pytest.approx(a, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", list(METRICS))
def test_invariant_to_relabelling(name):
    x, y = make_blobs(n=150, d=12, k=4, sep=0.6, seed=12, positive=True)
    relabelled = np.array(["z", "y", "x", "w"])[y]       # reverses the sorted class order
    assert METRICS[name](x, relabelled) == pytest.approx(METRICS[name](x, y), rel=1e-6, abs=1e-9)
    assert METRICS[name](x, 10 * y + 7) == pytest.approx(METRICS[name](x, y), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", list(METRICS))
def test_separated_beats_shuffled_labels(name):
    x, y = make_blobs(n=160, d=10, k=4, sep=1.0, seed=13, positive=True)
    shuffled = np.random.default_rng(0).permutation(y)
    assert METRICS[name](x, y) > METRICS[name](x, shuffled)


@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize("d", [8, 200])
def test_two_samples_per_class_is_finite(name, d):
    x, y = make_blobs(n=10, d=d, k=5, sep=1.0, seed=14, positive=True)
    assert np.bincount(y).tolist() == [2] * 5
    assert math.isfinite(METRICS[name](x, y))


@pytest.mark.parametrize("name", list(METRICS))
def test_nan_features_rejected(name):
    x, y = make_blobs(n=40, d=5, k=2)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="features"):
        METRICS[name](bad, y)
    with pytest.raises(ValueError, match="labels"):             # a single class
        METRICS[name](x, np.zeros(40, int))
    with pytest.raises(ValueError, match="features"):           # length mismatch
        METRICS[name](x[:-1], y)


@pytest.mark.parametrize("name", list(METRICS))
def test_registered_and_finite_through_registry(name):
    x, y = make_blobs(n=60, d=6, k=3, positive=True)
    assert registry.get_metric(name).fn is not None
    assert math.isfinite(registry.score(name, x, y, source_probs=None))


def test_parc_needs_a_within_class_pair():
    x, y = make_blobs(n=5, d=6, k=5)
    with pytest.raises(ValueError, match="at least 2 samples"):
        parc_score(x, np.arange(5))


# ============================================================================ speed/memory paths (#17)
from zoorank.metrics import _blocked  # noqa: E402
from zoorank.metrics.etran import energy_scores  # noqa: E402

_BLOCKED = {
    "sfda": lambda x, y: sfda_score(x, y),
    "ped": lambda x, y: ped_score(x, y),
    "etran": lambda x, y: etran_score(x, y),
    "etran_shrunk": lambda x, y: etran_score(x, y, lda_covariance="shrunk"),
}


@pytest.mark.parametrize("name", sorted(_BLOCKED))
def test_many_blocks_equal_one_block(name, monkeypatch):
    """Chunked float64 statistics only reorder additions: 64-entry blocks (dozens of them)
    give the one-block value to rounding."""
    x, y = make_blobs(n=160, d=9, k=4, sep=0.8, seed=21, positive=True)
    one = _BLOCKED[name](x, y)
    moved = ped_move(x, y)
    monkeypatch.setattr(_blocked, "BLOCK_ELEMS", 64)
    monkeypatch.setattr(_blocked, "GRAM_BLOCK_ELEMS", 64)
    monkeypatch.setattr(_blocked, "MATMUL_BLOCK_ELEMS", 64)
    assert _BLOCKED[name](x, y) == pytest.approx(one, rel=1e-12)
    assert np.allclose(ped_move(x, y), moved, rtol=0, atol=1e-12)


def test_energy_matches_scipy_logsumexp():
    """Block logsumexp in the features' dtype: float64 input equals scipy's to rounding;
    float32 input (float32 exp, float64 sum) is within the float32 error of the exponent
    argument, |x - max| * 2**-24 relative per term, i.e. abs ~1e-6 here (|x| <= ~10)."""
    x, _ = make_blobs(n=90, d=30, k=3, sep=2.0, seed=22)
    for t in (1.0, 0.5):
        exact = t * logsumexp(x / t, axis=1)
        assert np.allclose(energy_scores(x, t), exact, rtol=1e-13, atol=0)
        x32 = x.astype(np.float32)
        exact32 = t * logsumexp(x32.astype(np.float64) / t, axis=1)
        err = np.abs(energy_scores(x32, t) - exact32).max()
        assert err <= 4 * np.abs(x32 / t).max() * 2.0 ** -24 * t + 1e-12


def test_float32_features_give_the_float64_statistics():
    """float32 features are never upcast whole, yet LDA statistics and logits are float64:
    SFDA's first LDA / ETran's LDA component equal the float64 computation on the same
    values to rounding. SFDA's ConfMix stores the mixed features in the input dtype (as the
    reference, which overwrites its float32 input): with float64 features it is exact."""
    x, y = make_blobs(n=150, d=8, k=4, sep=0.7, seed=23, positive=True)
    x32 = x.astype(np.float32)
    a = etran_components(x32, y)["lda"]
    b = etran_components(x32.astype(np.float64), y)["lda"]
    assert a == pytest.approx(b, rel=1e-12)
    assert sfda_score(x32, y, confmix=False) == pytest.approx(
        sfda_score(x32.astype(np.float64), y, confmix=False), rel=1e-12)
    # ConfMix rounding to float32: features move by <= 2**-24 relative, the mean posterior
    # by at most that times its Lipschitz constant (logits are O(|x| |coef|), here < 1e3)
    assert sfda_score(x32, y) == pytest.approx(sfda_score(x32.astype(np.float64), y),
                                               rel=1e3 * 2.0 ** -24)
    assert ped_score(x32, y) == pytest.approx(ped_score(x32.astype(np.float64), y), rel=1e-12)
