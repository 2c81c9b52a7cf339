"""GBC: Gaussian Bhattacharyya Coefficient.

Pandy, Agostinelli, Uijlings, Ferrari & Mensink, "Transferability Estimation using
Bhattacharyya Class Separability", CVPR 2022.

Checked against google-research/google-research
``stable_transfer/transferability/gbc.py`` (``compute_bhattacharyya_distance``,
``compute_per_class_mean_and_variance``, ``get_gbc_score``) with the settings of
``stable_transfer/transferability/config_transferability_source_selection.py``
(``gbc.pca_reduction = 64``, ``gaussian_type = 'spherical'``) and
``features_targets_utils.pca_reduction`` (exact PCA, ``svd_solver='full'``).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from zoorank.metrics._common import class_mean_var, pca_reduce
from zoorank.metrics.validation import check_features_labels


def bhattacharyya_distance(mu1, var1, mu2, var2) -> float:
    """Bhattacharyya distance between two Gaussians with diagonal covariances.

    ``D_B = 1/8 sum_d (mu1-mu2)_d^2 / s_d + 1/2 sum_d [log s_d - (log var1_d + log var2_d)/2]``
    with ``s = (var1 + var2)/2``; the Bhattacharyya coefficient is ``exp(-D_B)`` =
    ``integral sqrt(p1 p2)``.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    var1 = np.broadcast_to(np.asarray(var1, float), mu1.shape)
    var2 = np.broadcast_to(np.asarray(var2, float), mu1.shape)
    s = (var1 + var2) / 2
    return float(np.sum((mu1 - mu2) ** 2 / s) / 8
                 + 0.5 * np.sum(np.log(s) - 0.5 * np.log(var1) - 0.5 * np.log(var2)))


def gbc_score(features, labels, *, n_components: int | None = 64,
              gaussian_type: str = "spherical", spherical_logdet: str = "reference",
              min_variance: float = 1e-4, random_state: int = 0) -> float:
    """GBC score (higher = better; the reference's sign).

    Formula: project the features on their first ``n_components`` principal components,
    fit one Gaussian per class (mean ``mu_c``, per-dimension variance ``v_c`` with 1/n_c,
    clipped below at ``min_variance``; ``gaussian_type="spherical"`` replaces ``v_c`` by its
    mean over dimensions ``sigma_c``), and return

        GBC = - sum_{c != c'} exp(-D_B(c, c'))   (ordered pairs, i.e. each pair twice)

    with the Bhattacharyya distance of diagonal Gaussians, ``s = (v_c + v_c')/2``::

        D_B = 1/8 sum_d (mu_c - mu_c')_d^2 / s_d + 1/2 sum_d [log s_d - (log v_cd + log v_c'd)/2].

    ``spherical_logdet``: for spherical Gaussians the reference code sums the log term over
    the *scalar* variances (``tf.reduce_sum`` of a scalar), i.e. uses
    ``1/2 [log s - (log sigma_c + log sigma_c')/2]`` once instead of ``D`` times.
    "reference" (default) reproduces that; "exact" multiplies it by the dimension, which is
    the true Bhattacharyya distance of the two isotropic Gaussians. Irrelevant for
    ``gaussian_type="diagonal"``.

    ``n_components``: exact PCA dimension (reference 64), capped at ``min(D, N - 1)``; None
    keeps the raw features. ``random_state`` is accepted for a uniform signature (the exact
    PCA is deterministic).

    Checked against google-research ``stable_transfer/transferability/gbc.py``.
    """
    if gaussian_type not in ("spherical", "diagonal"):
        raise ValueError(f"gaussian_type must be 'spherical' or 'diagonal', got {gaussian_type!r}")
    if spherical_logdet not in ("reference", "exact"):
        raise ValueError(f"spherical_logdet must be 'reference' or 'exact', got {spherical_logdet!r}")
    if not min_variance > 0:
        raise ValueError(f"min_variance must be > 0, got {min_variance!r}")
    chk = check_features_labels(features, labels)
    x, codes, k = chk.features, chk.labels, chk.n_classes
    n, d = x.shape
    if n_components is not None:
        z = pca_reduce(x, int(min(n_components, d, max(n - 1, 1))), solver="full",
                       random_state=random_state)
    else:
        z = x
    means, var, _ = class_mean_var(z, codes, k, ddof=0)
    var = np.maximum(var, min_variance)
    dim = z.shape[1]
    if gaussian_type == "spherical":
        sig = var.mean(axis=1)                                   # (K,)
        s = (sig[:, None] + sig[None, :]) / 2
        d2 = cdist(means, means, metric="sqeuclidean")          # exact per pair
        logterm = np.log(s) - 0.5 * np.log(sig)[:, None] - 0.5 * np.log(sig)[None, :]
        if spherical_logdet == "exact":
            logterm = logterm * dim
        dist = d2 / s / 8 + 0.5 * logterm
    else:
        # (K, K, dim) is small (K <= a few hundred, dim <= 64); loop over rows to bound memory.
        dist = np.empty((k, k))
        logv = np.log(var)
        for c in range(k):
            s = (var[c] + var) / 2                               # (K, dim)
            dist[c] = (np.sum((means[c] - means) ** 2 / s, axis=1) / 8
                       + 0.5 * np.sum(np.log(s) - 0.5 * logv[c] - 0.5 * logv, axis=1))
    bc = np.exp(-dist)
    np.fill_diagonal(bc, 0.0)
    return -float(bc.sum())
