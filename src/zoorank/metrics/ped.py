"""PED: Potential Energy Decline (physics-inspired feature dynamics), scored with SFDA.

Li, Hu, Ge, Shan & Duan, "Exploring Model Transferability through the Lens of Potential
Energy", ICCV 2023.

Checked against lixiaotong97/PED ``metrics.py`` (``compute_per_class_mean_variance_num``,
``One_Step_PED``, ``PED_Score``) with the defaults of its ``evaluate_metric_cpu.py``
(``--step 0.1 --nsigma 0.6 --er 0.5 --constant 1 --type SFDA``).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from zoorank.metrics._blocked import blocks64, class_stats
from zoorank.metrics.sfda import sfda_from_checked
from zoorank.metrics.validation import check_features_labels, check_matrix


def _one_step(means: np.ndarray, radius: np.ndarray, *, time_step: float, nsigma: float,
              constant: float) -> tuple[np.ndarray, float]:
    """Per-class displacement (K, D) of one PED step in standardised space, and its L1 size."""
    dist = cdist(means, means)                                   # |mu_a - mu_b|, (K, K)
    overlap = np.maximum(abs(nsigma) * (radius[:, None] + radius[None, :]) - dist, 0.0)
    np.fill_diagonal(overlap, 0.0)
    # repulsion: a moves away from b by min(a t^2 / 2, overlap) with acceleration c * overlap
    step = np.minimum(0.5 * time_step ** 2 * constant * overlap, overlap)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(dist > 0, step / dist, 0.0)           # coincident means: no direction
    move = weight.sum(axis=1)[:, None] * means - weight @ means  # sum_b w_ab (mu_a - mu_b)
    return move, float(np.abs(move).sum())


def ped_move(features, labels, *, time_step: float = 0.1, nsigma: float = 0.6,
             exit_ratio: float = 0.5, max_steps: int = 6, constant: float = 1.0,
             eps: float = 1e-3, reference_features=None) -> np.ndarray:
    """Features after PED's potential-energy dynamics (N, D), in the original scale.

    Features are standardised with the mean and std (floored at ``eps``) of
    ``reference_features`` (the reference uses ImageNet-val features of the same backbone;
    default here: the target features themselves). Each step, for every class pair (a, b)
    with means at distance ``d``, radii ``R = sqrt(sum_d var)`` and overlap
    ``F = max(|nsigma| (R_a + R_b) - d, 0)``, class a is translated by
    ``min(time_step^2 constant F / 2, F)`` along ``(mu_a - mu_b)/d`` (and b the opposite way);
    translations of a class add up over its partners. Step 1 is always taken; later steps
    are taken while their total L1 displacement is more than ``exit_ratio`` times the
    first one, at most ``max_steps`` steps in all.
    """
    chk = check_features_labels(features, labels, dtype=None)
    return _ped_move_checked(chk.features, chk.labels, chk.n_classes, time_step=time_step,
                             nsigma=nsigma, exit_ratio=exit_ratio, max_steps=max_steps,
                             constant=constant, eps=eps, reference_features=reference_features)


def _ped_move_checked(x, codes, k, *, time_step, nsigma, exit_ratio, max_steps, constant, eps,
                      reference_features):
    if not time_step > 0:
        raise ValueError(f"time_step must be > 0, got {time_step!r}")
    if not (isinstance(max_steps, (int, np.integer)) and max_steps >= 0):
        raise ValueError(f"max_steps must be a non-negative integer, got {max_steps!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    ref = x if reference_features is None else check_matrix(reference_features,
                                                            name="reference_features", dtype=None)
    if ref.shape[1] != x.shape[1]:
        raise ValueError(f"reference_features has {ref.shape[1]} columns but features has {x.shape[1]}")
    center, scale = _standardiser(ref, eps)
    # Statistics of the standardised features z = (x - center) / scale from those of x
    # (means map affinely, variances scale by 1/scale^2), so z is never formed.
    counts, means_x, _ = class_stats(x, codes, k)
    means = (means_x - center) / scale
    # radius_k^2 = sum_d Var_k(z_d) = trace(diag(1/scale^2) Cov_k(x)): per-class squared
    # deviations from the class mean, weighted per dimension, accumulated block by block
    sq = np.zeros(k)
    inv_s2 = 1.0 / scale ** 2
    for s, e, dev in blocks64(x):
        dev -= means_x[codes[s:e]]
        sq += np.bincount(codes[s:e], weights=np.einsum("ij,ij,j->i", dev, dev, inv_s2),
                          minlength=k)
    radius = np.sqrt(sq / np.maximum(counts, 1))
    # Every step translates whole classes, so class variances (hence radii) never change and
    # class means move by exactly the applied displacement: the statistics the reference
    # recomputes from the moved features each step are updated in O(K D) instead.
    shift = np.zeros_like(means)
    first = None
    for _ in range(max_steps):
        move, change = _one_step(means, radius, time_step=time_step, nsigma=nsigma,
                                 constant=constant)
        if first is None:
            if change <= 0:
                break                                    # no overlapping classes: nothing moves
            first = change
        elif not change / first > exit_ratio:
            break
        means = means + move
        shift += move
    # (z + shift[y]) * scale + center = x + (shift * scale)[y]: the move in the original scale
    moved = np.empty(x.shape)
    step = shift * scale
    for s, e, blk in blocks64(x):
        np.add(blk, step[codes[s:e]], out=moved[s:e])
    return moved


def _standardiser(ref: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean, max(std, eps)) per dimension of ``ref`` in float64, block by block
    (two-pass: mean, then squared deviations), like ``np.mean`` / ``np.std`` of a float64 copy."""
    n, d = ref.shape
    center = np.zeros(d)
    for _, _, blk in blocks64(ref):
        center += blk.sum(axis=0)
    center /= n
    var = np.zeros(d)
    for _, _, dev in blocks64(ref):
        dev -= center
        var += np.einsum("ij,ij->j", dev, dev)
    return center, np.maximum(np.sqrt(var / n), eps)


def ped_score(features, labels, *, time_step: float = 0.1, nsigma: float = 0.6,
              exit_ratio: float = 0.5, max_steps: int = 6, constant: float = 1.0,
              eps: float = 1e-3, reference_features=None, shrinkage: float | None = None,
              score: str = "prob", random_state: int = 0) -> float:
    """PED score (higher = better): SFDA of the features after potential-energy dynamics.

    Formula: simulate the class-level repulsion of :func:`ped_move` (overlapping classes,
    measured by ``|nsigma|`` times their radii, push each other apart until the potential
    energy stops declining: the step size falls below ``exit_ratio`` of the first one), then
    return :func:`zoorank.metrics.sfda.sfda_score` of the moved features (the reference's
    default ``type='SFDA'``; ``shrinkage`` and ``score`` are passed to it).

    Differences from the reference, all explicit: standardisation uses
    ``reference_features`` when given (the reference requires ImageNet-val features and
    raises otherwise), else the target features; coincident class means get no push
    (the reference divides by zero); when no classes overlap nothing moves (the reference
    gets 0/0). ``random_state`` is accepted for a uniform signature (PED is deterministic).

    Checked against lixiaotong97/PED ``metrics.py`` (``One_Step_PED``, ``PED_Score``).
    """
    chk = check_features_labels(features, labels, dtype=None)
    moved = _ped_move_checked(chk.features, chk.labels, chk.n_classes, time_step=time_step,
                              nsigma=nsigma, exit_ratio=exit_ratio, max_steps=max_steps,
                              constant=constant, eps=eps, reference_features=reference_features)
    return sfda_from_checked(moved, chk.labels, chk.n_classes, shrinkage=shrinkage, score=score)
