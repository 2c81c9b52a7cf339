"""N-LEEP's full-covariance EM (``zoorank.metrics._gmm``) against scikit-learn's
GaussianMixture, closed forms, invariances and failure modes (issue 17)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from zoorank.metrics import _gmm
from zoorank.metrics._common import sample_keys
from zoorank.metrics._gmm import fit_gmm_full
from zoorank.metrics.leep import leep_from_probs
from zoorank.metrics.nleep import nleep_score, pca_reduce


@pytest.fixture(autouse=True)
def one_thread():
    """One BLAS/OpenMP thread: these problems are tiny, and on a shared machine threaded
    k-means and LAPACK calls on 5 x 5 matrices stall on thread wake-ups (seconds per
    test). The worker-count test sets its workers explicitly."""
    with threadpool_limits(limits=1):
        yield


def clusters(n=600, q=5, k=4, seed=0, spread=3.0):
    """Anisotropic Gaussian clusters (N, q) float64 and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, spread, (k, q))
    scales = rng.uniform(0.5, 2.0, (k, q))
    labels = rng.integers(0, k, n)
    x = centres[labels] + rng.standard_normal((n, q)) * scales[labels]
    return x, labels


def sklearn_fit(x, c, **kw):
    gm = GaussianMixture(c, covariance_type="full", random_state=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x)
    return gm, gm.predict_proba(x)


def test_matches_sklearn_in_float64():
    # Same start (KMeans with the same RandomState), same updates and stopping rule: the
    # two differ only by float64 rounding (~1e-16 per operation, different summation
    # orders); EM is a contraction near its fixed point, so after n_iter steps the
    # parameters differ by a few hundred ulps at most (measured: 2e-14).
    x, _ = clusters()
    gm, post = sklearn_fit(x, 6)
    fit = fit_gmm_full(x, 6)
    assert fit.n_iter == gm.n_iter_ and fit.converged == gm.converged_
    assert fit.lower_bound == pytest.approx(gm.lower_bound_, rel=1e-12)
    np.testing.assert_allclose(fit.weights, gm.weights_, rtol=1e-10)
    np.testing.assert_allclose(fit.means, gm.means_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fit.covariances, gm.covariances_, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fit.posteriors, post, atol=1e-10)


def test_matches_sklearn_to_float32_rounding():
    # float32 data: sklearn computes everything in float32, fit_gmm_full its products in
    # float32 and its sums in float64; both are within float32 rounding of the exact
    # (float64) fit of the same values. A Mahalanobis term m carries an error of about
    # q * eps32 * m (q = 5, eps32 = 6e-8; m up to ~200 at the clusters' borders), so a
    # log-odds of two components moves by <= 6e-5 and a posterior r by r (1 - r) times
    # that (<= 1.5e-5) per EM step; over ~10 steps <= 1.5e-4: atol 3e-4 (measured: ours
    # 1.2e-5 and sklearn 4.9e-5 from the exact fit).
    x64, _ = clusters(seed=1)
    x32 = x64.astype(np.float32)
    exact, post_exact = sklearn_fit(x32.astype(np.float64), 6)
    gm32, post32 = sklearn_fit(x32, 6)
    fit = fit_gmm_full(x32, 6)
    assert fit.n_iter == exact.n_iter_ == gm32.n_iter_
    np.testing.assert_allclose(fit.posteriors, post_exact, atol=3e-4)
    np.testing.assert_allclose(fit.posteriors, post32, atol=3e-4)
    np.testing.assert_allclose(fit.means, exact.means_, rtol=3e-4, atol=3e-4)
    assert fit.lower_bound == pytest.approx(exact.lower_bound_, rel=1e-5)


def test_one_component_is_the_sample_gaussian():
    # C = 1: every posterior is 1, the mean is the sample mean, the covariance the biased
    # sample covariance + reg_covar I; the second step repeats the first exactly, so EM
    # stops at n_iter = 2 with the Gaussian log-likelihood as its lower bound.
    x, _ = clusters(n=300, q=3, k=2, seed=2)
    fit = fit_gmm_full(x, 1, reg_covar=1e-3)
    mean = x.mean(axis=0)
    cov = np.cov(x.T, bias=True) + 1e-3 * np.eye(3)
    assert fit.n_iter == 2 and fit.converged
    np.testing.assert_allclose(fit.posteriors, 1.0, atol=1e-15)
    np.testing.assert_allclose(fit.means[0], mean, rtol=1e-12)
    np.testing.assert_allclose(fit.covariances[0], cov, rtol=1e-12)
    ll = scipy.stats.multivariate_normal(mean, cov).logpdf(x).mean()
    assert fit.lower_bound == pytest.approx(ll, rel=1e-12)


def test_moments_skip_only_underflowed_posteriors():
    # the M-step's scatter sums over the rows with r >= tiny; against the dense sum over
    # every row (zeros, a denormal and normal weights) it agrees to float64 rounding
    x, _ = clusters(n=200, q=4, k=3, seed=3)
    rng = np.random.default_rng(3)
    resp = rng.random((3, 200))
    resp[:, ::3] = 0.0
    resp[1, 1] = 1e-310                                          # below float64's tiny
    means = rng.standard_normal((3, 4))
    em = _gmm._Em(x, 3, 2, 64)
    try:
        got = em.moments(resp, means)
    finally:
        em.close()
    d = x[None] - means[:, None]                                 # (C, N, q)
    want = np.einsum("kn,kni,knj->kij", resp, d, d)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got, np.swapaxes(got, 1, 2))


def test_same_result_for_any_worker_count_and_block_size():
    x = clusters(n=500, q=6, k=5, seed=4)[0].astype(np.float32)
    one = fit_gmm_full(x, 8, n_workers=1)
    three = fit_gmm_full(x, 8, n_workers=3)
    # each component's sums run over the same blocks in the same order: bit for bit
    np.testing.assert_array_equal(one.posteriors, three.posteriors)
    np.testing.assert_array_equal(one.covariances, three.covariances)
    # other blocks: other summation orders, equal to float32 rounding (bound above;
    # measured 2.4e-6)
    small = fit_gmm_full(x, 8, block_elems=64)
    assert small.n_iter == one.n_iter
    np.testing.assert_allclose(small.posteriors, one.posteriors, atol=3e-4)


def test_bad_input_is_named():
    x, _ = clusters(n=20, q=2, k=2)
    with pytest.raises(ValueError, match="n_components"):
        fit_gmm_full(x, 21)
    with pytest.raises(ValueError, match="float32 or float64"):
        fit_gmm_full(x.astype(np.int64), 2)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_gmm_full(bad, 2)
    with pytest.raises(ValueError, match="n_workers"):
        fit_gmm_full(x, 2, n_workers=0)
    # two groups of identical points: a component's covariance is 0 without reg_covar
    dup = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 10, axis=0)
    with pytest.raises(ValueError, match="singular covariance"):
        fit_gmm_full(dup, 2, reg_covar=0.0)


def test_nleep_full_equals_sklearn_pipeline():
    # N-LEEP with covariance_type="full" = PCA -> sklearn GaussianMixture -> LEEP, rows in
    # the canonical order (independent formulation); float64 features: equal to rounding
    x, y = clusters(n=400, q=12, k=4, seed=5)
    order = np.lexsort((y, sample_keys(len(y), None, 12345)))
    z = pca_reduce(x[order], 0.8, 0)
    _, post = sklearn_fit(z, 4 * 3)
    for log in (True, False):
        want = leep_from_probs(post, y[order], 4, log=log)
        got = nleep_score(x, y, n_components_per_class=3, covariance_type="full", log=log)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_nleep_full_invariant_to_sample_order():
    x, y = clusters(n=300, q=8, k=3, seed=6)
    perm = np.random.default_rng(1).permutation(len(y))
    a = nleep_score(x, y, covariance_type="full")
    b = nleep_score(x[perm], y[perm], covariance_type="full", sample_ids=perm)
    assert b == pytest.approx(a, rel=1e-6, abs=1e-9)
