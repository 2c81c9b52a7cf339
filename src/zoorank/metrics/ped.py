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

from zoorank.metrics._common import class_mean_var
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
    chk = check_features_labels(features, labels)
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
                                                            name="reference_features")
    if ref.shape[1] != x.shape[1]:
        raise ValueError(f"reference_features has {ref.shape[1]} columns but features has {x.shape[1]}")
    center = ref.mean(axis=0)
    scale = np.maximum(ref.std(axis=0), eps)
    z = (x - center) / scale
    # Every step translates whole classes, so class variances (hence radii) never change and
    # class means move by exactly the applied displacement: the statistics the reference
    # recomputes from the moved features each step are updated in O(K D) instead.
    means, var, _ = class_mean_var(z, codes, k, ddof=0)
    radius = np.sqrt(var.sum(axis=1))
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
    z = z + shift[codes]
    return z * scale + center


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
    chk = check_features_labels(features, labels)
    moved = _ped_move_checked(chk.features, chk.labels, chk.n_classes, time_step=time_step,
                              nsigma=nsigma, exit_ratio=exit_ratio, max_steps=max_steps,
                              constant=constant, eps=eps, reference_features=reference_features)
    return sfda_from_checked(moved, chk.labels, chk.n_classes, shrinkage=shrinkage, score=score)
