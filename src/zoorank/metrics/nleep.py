"""N-LEEP (Li et al., "Ranking Neural Checkpoints", CVPR 2021): LEEP with the source
classifier replaced by a Gaussian mixture fitted to the target features.

    1. PCA of the features keeping the smallest number of components whose explained
       variance ratio exceeds ``pca_variance`` (0.8; sklearn's rule for a float
       ``n_components``);
    2. a GMM with ``n_components_per_class * K`` components (5K; capped at N) fitted to the
       projections; its posteriors ``p(z | x_i)`` play the role of source probabilities;
    3. ``N-LEEP = mean_i log sum_z P_hat(y_i | z) p(z | x_i)`` (LEEP, see ``leep.py``).

Higher is better.

Checked against TencentARC/SFDA ``metrics.py`` (``NLEEP``). Deliberate differences:

* ``covariance_type="diag"`` by default (SFDA uses sklearn's default "full"). A full
  covariance GMM costs O(N C q^2) per EM step (q = PCA dims, C = 5K components), q times
  the diagonal model's O(N C q); with q in the hundreds this is why N-LEEP is the slowest
  metric in the literature (1430 s on CIFAR-10 in the LEAD paper).
  ``covariance_type="full"`` reproduces SFDA's model.
* SFDA's code drops the log (mean of the expected empirical probability); the paper
  keeps it. ``log=True`` (default) follows the paper; ``log=False`` follows SFDA.
* ``covariance_type="full"`` is fitted by ``_gmm.fit_gmm_full``: scikit-learn's EM (same
  k-means start, updates and stopping rule, values equal up to rounding) with half the
  arithmetic per step (triangular products, symmetric rank updates, posteriors that
  underflow skipped): 2.7x less CPU per EM step than ``GaussianMixture`` on one thread
  (10,000 rows, 81 PCA dims, 50 components) and no BLAS thread stalls on a loaded machine
  (issue 17; ``docs/performance.md``). The other
  covariance types are scikit-learn's ``GaussianMixture``.
* The GMM is seeded (``random_state``) and EM is capped at ``max_iter=100`` (sklearn's
  default; tol 1e-3 on the per-sample lower bound); rows are put in a canonical order
  (sorted by ``_common.sample_keys``, a hash of each sample's identity ``sample_ids``)
  before fitting, so the result does not depend on the order of the samples, and the order
  never depends on the feature values (which would make the score jump with their last bits).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from zoorank.metrics._common import sample_keys
from zoorank.metrics._gmm import fit_gmm_full
from zoorank.metrics.leep import leep_from_probs
from zoorank.metrics.validation import check_features_labels


def pca_reduce(x: np.ndarray, variance: float, random_state: int = 0) -> np.ndarray:
    """Project centred ``x`` on the fewest principal components explaining more than
    ``variance`` of the total variance (covariance eigendecomposition when N >= D)."""
    solver = "covariance_eigh" if x.shape[0] >= x.shape[1] else "full"
    return PCA(n_components=variance, svd_solver=solver,
               random_state=random_state).fit_transform(x)


def nleep_score(features, labels, *, n_components_per_class: int = 5,
                pca_variance: float = 0.8, covariance_type: str = "diag",
                max_iter: int = 100, tol: float = 1e-3, reg_covar: float = 1e-6,
                log: bool = True, random_state: int = 0, sample_ids=None) -> float:
    """N-LEEP (Li et al., CVPR 2021): PCA(``pca_variance``) -> GMM with
    ``n_components_per_class * K`` components (at most N) -> LEEP on the GMM posteriors.

    Parameters
    ----------
    n_components_per_class : GMM components per target class (5 in the paper / SFDA).
    pca_variance : explained-variance fraction kept by PCA (0.8); ``None`` = no PCA.
    covariance_type : GaussianMixture covariance ("diag" default; "full" as SFDA, fitted by
        ``_gmm.fit_gmm_full``, the others by sklearn's GaussianMixture).
    max_iter, tol, reg_covar : EM settings (sklearn's meaning and defaults).
    log : mean log-likelihood (paper, default) or mean probability (SFDA's code).
    random_state : seed of the k-means initialisation of the GMM.
    sample_ids : (N,) identities of the samples (canonical dataset positions; default: row
        positions); they fix the canonical row order of the fit.

    Cost (diag, single BLAS thread): ~21 CPU-s for 50,000 x 2048, K=10 (72 PCA dims) and
    ~19 CPU-s for 10,000 x 1280, K=100 (500 components), on synthetic features with a
    power-law spectrum; it grows with the PCA dimension that 80% of the variance needs.
    Higher is better. Checked against TencentARC/SFDA ``metrics.py`` (NLEEP).
    """
    # float32 features stay float32 through PCA and EM, as in the reference (sklearn keeps
    # float32): the full-covariance EM costs ~2.5x more per iteration in float64 (issue 17)
    chk = check_features_labels(features, labels, dtype=None)
    if n_components_per_class < 1:
        raise ValueError(f"n_components_per_class must be >= 1, got {n_components_per_class}")
    if pca_variance is not None and not 0.0 < pca_variance < 1.0:
        raise ValueError(f"pca_variance must be in (0, 1) or None, got {pca_variance}")
    x = chk.features
    # canonical row order (by a hash of each sample's identity): the fit then does not
    # depend on how the samples are ordered
    order = np.lexsort((chk.labels, sample_keys(chk.n_samples, sample_ids, 12345)))
    x, codes = x[order], chk.labels[order]
    if np.all(x.max(axis=0) == x.min(axis=0)):         # no (N, D) temporary, unlike std
        raise ValueError("features are constant across samples: N-LEEP's GMM is undefined")
    if pca_variance is not None:
        x = pca_reduce(x, pca_variance, random_state)
    n_comp = int(min(n_components_per_class * chk.n_classes, chk.n_samples))
    if covariance_type == "full":
        probs = fit_gmm_full(x, n_comp, max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                             random_state=random_state).posteriors
    else:
        gmm = GaussianMixture(n_components=n_comp, covariance_type=covariance_type,
                              max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                              random_state=random_state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            probs = gmm.fit(x).predict_proba(x)
    return leep_from_probs(probs, codes, chk.n_classes, log=log)
