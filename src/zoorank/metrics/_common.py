"""Shared numerical pieces of the feature-based baselines (PARC, GBC, SFDA, PED, ETran, PACTran).

Everything here is a pure function of arrays (numpy/scipy/sklearn only). Inputs are assumed
already validated by :func:`zoorank.metrics.validation.check_features_labels` (float64
features, integer codes ``0..K-1``).

Pieces:

- :func:`sample_keys` / :func:`stratified_subsample`: seeded stratified subsampling by
  *sample identity*. Each sample gets a 64-bit key from its identity (``sample_ids``: its
  position in the dataset's canonical order, which the pipeline passes; the row position when
  absent) through the splitmix64 finaliser, and each class keeps the rows with the smallest
  keys. Which rows are kept never depends on the float bits of the features, so every metric
  stays a continuous function of its inputs (a last-bit change of the features, e.g. from
  another BLAS thread count, cannot re-deal folds or subsets). Permuting the rows together
  with their ``sample_ids`` permutes the keys, so the subset is the same and is returned in a
  canonical order (sorted by key), hence downstream results are invariant to row order
  (``docs/science.md``, "Sample identity").
- :func:`pca_reduce`: PCA scores with an exact solver (eigendecomposition of the
  covariance or Gram matrix, whichever is smaller) or scikit-learn's randomized solver.
- :func:`class_counts`, :func:`class_means`, :func:`class_mean_var`,
  :func:`within_class_scatter`: per-class statistics through a sparse one-hot matrix and
  a symmetric rank-k BLAS update (``dsyrk``), no Python loop over classes.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
from scipy.linalg.blas import dsyrk



def _splitmix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (avalanche) on a uint64 array; arithmetic wraps mod 2**64."""
    z = z.copy()
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def sample_keys(n_samples: int, sample_ids=None, random_state: int = 0) -> np.ndarray:
    """Seeded 64-bit key of every sample, a function of its identity only.

    ``key_i = splitmix64(splitmix64(id_i + salt))`` with ``salt`` drawn from ``random_state``;
    ``sample_ids`` (N,) non-negative integers, distinct (the dataset's canonical positions),
    default ``arange(N)``. The keys never depend on the features' values.
    """
    if sample_ids is None:
        ids = np.arange(n_samples, dtype=np.uint64)
    else:
        raw = np.asarray(sample_ids)
        if raw.shape != (n_samples,):
            raise ValueError(f"sample_ids must have shape ({n_samples},) (one per row), got {raw.shape}")
        if raw.dtype.kind not in "iu":
            raise ValueError(f"sample_ids must be integers (canonical sample positions), got dtype {raw.dtype}")
        if raw.size and raw.min() < 0:
            raise ValueError("sample_ids must be non-negative")
        ids = raw.astype(np.uint64)
        if np.unique(ids).shape[0] != n_samples:
            raise ValueError("sample_ids must be distinct (one identity per sample)")
    salt = np.random.default_rng(random_state).integers(0, 2**63, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return _splitmix64(_splitmix64(ids + salt))


def stratified_subsample(features: np.ndarray, codes: np.ndarray, max_samples: int | None, *,
                         random_state: int = 0, min_per_class: int = 2,
                         canonical_order: bool = True, sample_ids=None) -> np.ndarray:
    """Indices of a seeded, stratified, order-independent subset of the rows.

    If ``max_samples`` is None or ``N <= max_samples`` every row is kept. Otherwise class
    ``k`` keeps ``max(min(n_k, min_per_class), floor(n_k * max_samples / N))`` rows (the
    proportional allocation of the reference PARC/PED code, ``int(p * n_k)``, with a floor so
    that no class disappears; the total can exceed ``max_samples`` by at most
    ``min_per_class * K``). Within a class the rows with the smallest :func:`sample_keys`
    (of ``sample_ids``) are kept. With ``canonical_order`` the indices are sorted by key (then by label code), so the
    returned subset is in the same order whatever the order of the input rows.
    """
    n = features.shape[0]
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be a positive integer or None, got {max_samples!r}")
    subsample = max_samples is not None and n > max_samples
    if not subsample and not canonical_order:
        return np.arange(n)
    keys = sample_keys(n, sample_ids, random_state)
    if subsample:
        k = int(codes.max()) + 1
        counts = np.bincount(codes, minlength=k)
        keep = np.maximum(np.minimum(counts, min_per_class),
                          np.floor(counts * (max_samples / n)).astype(np.int64))
        order = np.lexsort((keys, codes))            # by class, then by key
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.arange(n) - starts[codes[order]]
        idx = order[pos < keep[codes[order]]]
    else:
        idx = np.arange(n)
    if canonical_order:
        idx = idx[np.lexsort((codes[idx], keys[idx]))]
    else:
        idx = np.sort(idx)
    return idx


def _onehot_sparse(codes: np.ndarray, n_classes: int) -> scipy.sparse.csr_matrix:
    n = codes.shape[0]
    return scipy.sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_classes, n))


def class_counts(codes: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(codes, minlength=n_classes).astype(np.int64)


def class_means(x: np.ndarray, codes: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, D) class means (classes without samples get a zero row)."""
    counts = class_counts(codes, n_classes)
    sums = np.asarray(_onehot_sparse(codes, n_classes) @ x)
    return sums / np.maximum(counts, 1)[:, None]


def class_mean_var(x: np.ndarray, codes: np.ndarray, n_classes: int, *, ddof: int = 0):
    """Per-class means (K, D), per-dimension variances (K, D) and counts (K,).

    Variances are computed from class-centred data (two-pass, no cancellation) with
    denominator ``n_k - ddof``.
    """
    counts = class_counts(codes, n_classes)
    means = class_means(x, codes, n_classes)
    onehot = _onehot_sparse(codes, n_classes)
    var = np.empty_like(means)
    step = max(1, (1 << 23) // max(1, x.shape[1]))
    var[:] = 0.0
    for s in range(0, x.shape[0], step):
        xc = x[s:s + step] - means[codes[s:s + step]]
        var += np.asarray(onehot[:, s:s + step] @ (xc * xc))
    var /= np.maximum(counts - ddof, 1)[:, None]
    return means, var, counts


def gram_t(a: np.ndarray) -> np.ndarray:
    """``a.T @ a`` (D, D) through BLAS ``dsyrk`` (half the flops of a GEMM), symmetrised."""
    a = np.asarray(a, dtype=np.float64)
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    # a is C-contiguous (N, D) => a.T is Fortran-contiguous (D, N); syrk with trans=0
    # computes a.T @ a.T.T without copying.
    c = dsyrk(1.0, a.T, trans=0, lower=0)
    iu = np.triu_indices(c.shape[0], 1)
    c[(iu[1], iu[0])] = c[iu]
    return c


def within_class_scatter(x: np.ndarray, codes: np.ndarray, n_classes: int,
                         means: np.ndarray | None = None) -> np.ndarray:
    """``Sw = sum_k (n_k/N) Cov_k`` with biased (1/n_k) class covariances, i.e.
    ``(1/N) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T`` (D, D)."""
    if means is None:
        means = class_means(x, codes, n_classes)
    n, d = x.shape
    sw = np.zeros((d, d))
    step = max(1, (1 << 24) // max(1, d))
    for s in range(0, n, step):
        sw += gram_t(x[s:s + step] - means[codes[s:s + step]])
    return sw / n


def total_scatter(x: np.ndarray) -> np.ndarray:
    """Biased total covariance ``np.cov(x.T, bias=True)`` (D, D)."""
    mu = x.mean(axis=0)
    n, d = x.shape
    st = np.zeros((d, d))
    step = max(1, (1 << 24) // max(1, d))
    for s in range(0, n, step):
        st += gram_t(x[s:s + step] - mu)
    return st / n


def _flip_signs(components: np.ndarray) -> np.ndarray:
    """Make each row of ``components`` (k, D) have its largest-|.| entry positive.

    A rule on the loadings (not on the scores), so it does not depend on sample order."""
    idx = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(components.shape[0]), idx])
    signs[signs == 0] = 1.0
    return components * signs[:, None]


def pca_reduce(x: np.ndarray, n_components: int | None, *, solver: str = "full",
               random_state: int = 0, iterated_power: int | str = "auto") -> np.ndarray:
    """PCA scores ``(x - mean) @ V_k`` (N, k), k = min(n_components, D, N).

    ``solver="full"``: exact top-k eigenvectors of the covariance (D <= N) or of the Gram
    matrix (N < D) via LAPACK ``syevr`` restricted to the top k (no full decomposition);
    signs fixed by the largest loading. ``solver="randomized"``: scikit-learn's
    ``PCA(svd_solver="randomized", iterated_power=..., random_state=...)``, as used by
    the PARC reference (``iterated_power=1``). ``n_components=None`` returns the centred
    input unchanged (no reduction).
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if n_components is None:
        return x - x.mean(axis=0)
    k = int(min(n_components, d, n))
    if k < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components!r}")
    if solver == "randomized":
        from sklearn.decomposition import PCA
        if k >= min(n, d):
            solver = "full"
        else:
            return PCA(n_components=k, svd_solver="randomized", iterated_power=iterated_power,
                       random_state=random_state).fit_transform(x)
    if solver != "full":
        raise ValueError(f"solver must be 'full' or 'randomized', got {solver!r}")
    xc = x - x.mean(axis=0)
    if d <= n:
        cov = gram_t(xc)
        _, vecs = scipy.linalg.eigh(cov, subset_by_index=[d - k, d - 1], driver="evr")
        comps = _flip_signs(vecs[:, ::-1].T)                  # (k, D), descending variance
    else:
        gram = xc @ xc.T
        vals, u = scipy.linalg.eigh(gram, subset_by_index=[n - k, n - 1], driver="evr")
        vals, u = vals[::-1], u[:, ::-1]
        keep = vals > vals[0] * 1e-12 if vals[0] > 0 else np.zeros_like(vals, dtype=bool)
        comps = (xc.T @ u[:, keep]) / np.sqrt(vals[keep])     # (D, k') unit loadings
        comps = _flip_signs(comps.T)
        if comps.shape[0] < k:                                # null directions: zero scores
            comps = np.vstack([comps, np.zeros((k - comps.shape[0], d))])
    return xc @ comps.T
