"""Full-covariance Gaussian mixture by EM: scikit-learn's algorithm with half the arithmetic.

Model, start, updates and stopping rule are those of scikit-learn's
``GaussianMixture(covariance_type="full", init_params="kmeans", n_init=1)``
(scikit-learn/scikit-learn ``sklearn/mixture/_gaussian_mixture.py`` and ``_base.py``,
``BaseMixture.fit_predict``; EM of Dempster, Laird & Rubin 1977, Bishop 2006 Sec. 9.2.2):

- start: responsibilities one-hot at the labels of ``KMeans(n_init=1)`` seeded by the same
  ``RandomState``, then one M-step (weights ``n_k / N``);
- E-step: ``log N(x | mu_k, Sigma_k) = -(q log 2 pi + ||(x - mu_k) U_k||^2) / 2 + log det U_k``
  with ``U_k`` the upper-triangular factor of the precision (``Sigma_k^-1 = U_k U_k^T``),
  ``log p(x) = logsumexp_k(log w_k + log N_k)``, responsibilities ``r_ik = p(k | x_i)``;
- M-step: ``n_k = sum_i r_ik + 10 eps``, ``mu_k = sum_i r_ik x_i / n_k``,
  ``Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / n_k + reg_covar I``, ``w_k = n_k / sum n``;
- stop after the first EM step whose mean log-likelihood changed by less than ``tol``, or
  after ``max_iter`` steps; the posteriors are one E-step with the final parameters (what
  ``predict_proba`` returns after ``fit``).

Why not scikit-learn's own loop (issue 17): it multiplies all N rows by every component's
dense ``q x q`` factor (a GEMM each) and forms every covariance by a GEMM of the whole
``(N, q)`` centred copy, one component at a time, with multi-threaded BLAS calls that stall
on a shared machine. Here:

- E-step: a triangular multiply (BLAS ``trmm``, half a GEMM's flops) of ``x - mu_k``
  (nothing cancels), on row blocks that stay in cache; the row blocks are shared among the
  worker threads (rows are independent);
- M-step: a symmetric rank update (``syrk``, half a GEMM's flops) of the
  ``sqrt(r)``-weighted centred rows, only over the rows whose responsibility has not
  underflowed (:meth:`_Em.moments`); the components are shared among the workers;
- every worker uses one BLAS thread (no per-call thread wake-ups); the worker count is the
  BLAS thread count in force (:func:`blas_workers`);
- one E-step fewer than ``fit`` + ``predict_proba``.

The heavy products run in the data's dtype (float32 stays float32, as in scikit-learn);
block sums, means, covariances and their Cholesky factors are float64. Each component's
sums run over the same rows in the same order whatever the number of workers, so the
result does not depend on it. One thread, 10,000 x 81, 50 components: 0.19 CPU-s per EM
step against scikit-learn's 0.50 (``docs/performance.md``).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.linalg.blas import get_blas_funcs

from zoorank.metrics._blocked import row_blocks, symmetrise_upper

#: entries of one row block (256 Ki: 1 MiB in float32, stays in L2 with its centred copy)
GMM_BLOCK_ELEMS = 1 << 18

_SINGULAR = ("the Gaussian mixture's component {k} has a singular covariance (collapsed or "
             "duplicated samples): use fewer components or a larger reg_covar")


@dataclass(frozen=True)
class GmmFit:
    """Result of :func:`fit_gmm_full`: the posteriors ``p(k | x_i)`` (N, C) float64 and
    the fitted parameters (float64)."""
    posteriors: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    n_iter: int
    converged: bool
    lower_bound: float


def blas_workers() -> int:
    """Worker threads for the EM: the BLAS thread count in force (so that
    ``threadpool_limits(n)`` and the CLI's ``--threads`` apply), at most the usable cores."""
    from threadpoolctl import threadpool_info
    counts = [int(p["num_threads"]) for p in threadpool_info() if p.get("user_api") == "blas"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(max(counts, default=1), cores))


def _precision_factors(covariances: np.ndarray, dtype) -> tuple[list, np.ndarray]:
    """Upper factors ``U_k = L_k^-T`` of the precisions (Fortran order, ``dtype``, for
    ``trmm``) and ``log det U_k``, from float64 covariances ``Sigma_k = L_k L_k^T``."""
    factors, log_det = [], np.empty(covariances.shape[0])
    eye = np.eye(covariances.shape[1])
    for k, cov in enumerate(covariances):
        try:
            chol = scipy.linalg.cholesky(cov, lower=True)
        except np.linalg.LinAlgError:
            raise ValueError(_SINGULAR.format(k=k)) from None
        upper = scipy.linalg.solve_triangular(chol, eye, lower=True).T
        factors.append(np.asfortranarray(upper, dtype=dtype))
        log_det[k] = np.sum(np.log(np.diag(upper)))
    return factors, log_det


class _Em:
    """The per-block products of one fit (data ``x`` (N, q), ``C`` components, blocks
    and workers fixed for the whole fit)."""

    def __init__(self, x: np.ndarray, n_components: int, n_workers: int, block_elems: int):
        self.x = x
        self.c = n_components
        self.blocks = row_blocks(x.shape[0], x.shape[1], block_elems)
        self.trmm, self.syrk = get_blas_funcs(("trmm", "syrk"), (x,))
        self.rows = self.blocks[0][1] - self.blocks[0][0]
        self.workers = n_workers
        self.pool = ThreadPoolExecutor(n_workers) if n_workers > 1 else None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def _run(self, fn, groups: list) -> None:
        """``fn(group)`` for each group (of components or row blocks), one per worker."""
        if self.pool is None:
            for g in groups:
                fn(g)
        else:
            for f in [self.pool.submit(fn, g) for g in groups]:
                f.result()

    def _balanced(self, loads: np.ndarray) -> list[list[int]]:
        """Components dealt to the workers, largest load first to the least loaded."""
        groups, totals = [[] for _ in range(self.workers)], np.zeros(self.workers)
        for k in np.argsort(-loads, kind="stable"):
            w = int(np.argmin(totals))
            groups[w].append(int(k))
            totals[w] += loads[k]
        return groups

    def e_step(self, weights, means, factors: list, log_det, dtype):
        """``(mean_i log p(x_i), p(k | x_i) as (C, N) dtype)``, row blocks shared among
        the workers (rows are independent). Per block and component the Mahalanobis term
        ``||(x_i - mu_k) U_k||^2`` in the data's dtype; the log-sum-exp over the components
        by its maximum, in float64."""
        x = self.x
        n, q = x.shape
        resp = np.empty((self.c, n), dtype=dtype)
        log_norm = np.empty(n)
        mu = means.astype(x.dtype)
        offset = (log_det + np.log(weights) - 0.5 * q * np.log(2 * np.pi))[:, None]

        def work(blocks):
            buf = np.empty((self.rows, q), dtype=x.dtype)
            maha = np.empty((self.c, self.rows), dtype=x.dtype)
            for s, e in blocks:
                d, m = buf[: e - s], maha[:, : e - s]
                for k in range(self.c):
                    np.subtract(x[s:e], mu[k], out=d)
                    # d (b, q) C-order is the Fortran (q, b) matrix d^T: U_k^T d^T = (d U_k)^T
                    t = self.trmm(1.0, factors[k], d.T, side=0, lower=0, trans_a=1, overwrite_b=1)
                    np.einsum("ij,ij->j", t, t, out=m[k])
                log_p = m.astype(np.float64)
                log_p *= -0.5
                log_p += offset
                top = log_p.max(axis=0)
                log_p -= top
                np.exp(log_p, out=log_p)
                total = log_p.sum(axis=0)
                np.divide(log_p, total, out=resp[:, s:e], casting="same_kind")
                log_norm[s:e] = top + np.log(total)
        self._run(work, [self.blocks[w::self.workers] for w in range(self.workers)])
        return float(np.mean(log_norm)), resp

    def moments(self, resp: np.ndarray, means: np.ndarray) -> np.ndarray:
        """(C, q, q) float64 ``sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T`` (no division), from
        responsibilities ``resp`` (C, N) in the data's dtype.

        Only the rows with ``r_ik >=`` the dtype's smallest normal number enter component
        k's sum (gathered in row order, ``rows`` at a time): in many dimensions most
        posteriors underflow (about 90 % are exactly 0 in float32 on the benchmark's
        50 components), and a skipped row changes the sum by less than
        ``tiny * ||x_i - mu_k||^2``, far below its rounding."""
        x = self.x
        q = x.shape[1]
        out = np.zeros((self.c, q, q))
        mu = means.astype(x.dtype)
        active = [np.flatnonzero(r >= np.finfo(x.dtype).tiny) for r in resp]

        def work(ks):
            buf = np.empty((self.rows, q), dtype=x.dtype)
            for k in ks:
                for s in range(0, active[k].size, self.rows):
                    rows = active[k][s:s + self.rows]
                    d = np.take(x, rows, axis=0, out=buf[: rows.size])
                    d -= mu[k]
                    d *= np.sqrt(resp[k, rows])[:, None]
                    out[k] += self.syrk(1.0, d.T, trans=0, lower=0)     # upper of d^T d
                symmetrise_upper(out[k])
        self._run(work, self._balanced(np.array([a.size for a in active], dtype=float)))
        return out

    def weighted_means(self, resp: np.ndarray) -> np.ndarray:
        """(C, q) float64 ``sum_i r_ik x_i`` (``resp`` (C, N)): one product per row block,
        summed in float64."""
        out = np.zeros((self.c, self.x.shape[1]))
        for s, e in self.blocks:
            out += resp[:, s:e] @ self.x[s:e]
        return out


def _m_step(em: _Em, resp: np.ndarray, reg_covar: float):
    """``(n_k, mu, Sigma)`` of scikit-learn's ``_estimate_gaussian_parameters`` (full), from
    responsibilities ``resp`` (C, N)."""
    nk = resp.sum(axis=1, dtype=np.float64) + 10 * np.finfo(resp.dtype).eps
    means = em.weighted_means(resp) / nk[:, None]
    cov = em.moments(resp, means) / nk[:, None, None]
    cov[:, np.arange(cov.shape[1]), np.arange(cov.shape[1])] += reg_covar
    return nk, means, cov


def fit_gmm_full(x: np.ndarray, n_components: int, *, max_iter: int = 100, tol: float = 1e-3,
                 reg_covar: float = 1e-6, random_state: int = 0, n_workers: int | None = None,
                 block_elems: int = GMM_BLOCK_ELEMS) -> GmmFit:
    """Fit a ``n_components`` full-covariance Gaussian mixture to ``x`` (N, q) float32 or
    float64 by EM and return its posteriors on ``x`` (module docstring: scikit-learn's
    ``GaussianMixture(covariance_type="full").fit(x).predict_proba(x)``, same start, updates
    and stopping rule, up to rounding).

    ``n_workers``: threads sharing the E-step's row blocks and the M-step's components
    (default :func:`blas_workers`); the result is the same for any number. ``block_elems``: entries per row block.
    Raises ``ValueError`` on a bad argument, non-finite data, or a singular covariance.
    """
    from sklearn.cluster import KMeans
    from sklearn.utils import check_random_state
    from threadpoolctl import threadpool_limits

    x = np.asarray(x)
    if x.ndim != 2 or x.dtype not in (np.float32, np.float64):
        raise ValueError(f"GMM data must be a 2-D float32 or float64 array, got {x.dtype} {x.shape}")
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    if not 1 <= n_components <= n:
        raise ValueError(f"n_components must be in 1..{n} (the number of samples), got {n_components}")
    if max_iter < 1 or tol < 0 or reg_covar < 0:
        raise ValueError(f"need max_iter >= 1, tol >= 0, reg_covar >= 0; got {max_iter}, {tol}, {reg_covar}")
    if not np.isfinite(x).all():
        raise ValueError("GMM data contain NaN or inf")
    workers = blas_workers() if n_workers is None else int(n_workers)
    if workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")

    labels = KMeans(n_clusters=n_components, n_init=1,
                    random_state=check_random_state(random_state)).fit(x).labels_
    resp = np.zeros((n_components, n), dtype=x.dtype)
    resp[labels, np.arange(n)] = 1
    em = _Em(x, n_components, min(workers, n_components), block_elems)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            nk, means, cov = _m_step(em, resp, reg_covar)
            weights = nk / n
            factors, log_det = _precision_factors(cov, x.dtype)
            lower_bound, converged, n_iter = -np.inf, False, 0
            for n_iter in range(1, max_iter + 1):
                previous = lower_bound
                lower_bound, resp = em.e_step(weights, means, factors, log_det, x.dtype)
                nk, means, cov = _m_step(em, resp, reg_covar)
                weights = nk / nk.sum()
                factors, log_det = _precision_factors(cov, x.dtype)
                if abs(lower_bound - previous) < tol:
                    converged = True
                    break
            _, post = em.e_step(weights, means, factors, log_det, np.float64)
    finally:
        em.close()
    return GmmFit(posteriors=np.ascontiguousarray(post.T), weights=weights, means=means,
                  covariances=cov, n_iter=n_iter, converged=converged, lower_bound=lower_bound)
