"""LEAD stage 3 and its per-image score, numpy only: Eq. 7 of Hu et al., "LEAD: Exploring
Logit Space Evolution for Model Selection", CVPR 2024.

``F = (1 - exp(-eta_t * lambda_k')) * y + exp(-eta_t * lambda_k') * log_init`` for a sample of
class k (one-hot y, initial logits/probabilities ``log_init``, class NTK eigenvalue
``lambda_k`` scaled to ``lambda_k'``), and ``log F_y`` (or ``log_softmax(F)_y``) per image.

Split from :mod:`zoorank.metrics.lead` (which re-exports every name here) so that a ranking
served from cached stage outputs (``zoorank.pipeline.cached_ranking``, ``zoorank.reporting.ties``) evolves the
logits without importing torch. The parameter choices are documented in that module.
"""
from __future__ import annotations

import numpy as np

from zoorank.metrics.validation import check_matrix, encode_labels, one_hot

__all__ = ["DEFAULT_EIGENVALUE_SCALE", "DEFAULT_ETA_T", "TYPICAL_LAMBDA_PER_LOGIT",
           "check_eigenvalues", "evolve_logits", "image_log_likelihoods"]

_EIGEN_SCALES = ("per_logit", "none", "mean", "max")
DEFAULT_EIGENVALUE_SCALE = "per_logit"
#: median over the ablation's 71 pairs (benchmarks/results/lead_ablation.md) of a backbone's mean
#: lambda_k / K, whole network, head input standardised (LEAD's default), S = 4, the ground truth's
#: input sizes (raw head input: 1.26e4)
TYPICAL_LAMBDA_PER_LOGIT = 1.21e4
#: ln 2 / TYPICAL_LAMBDA_PER_LOGIT, rounded: the typical backbone keeps half its weight on its
#: initial logits (neither saturated nor frozen); one value for every model (docs/lead.md)
DEFAULT_ETA_T = 5e-5
_LOG_FLOOR = 1e-12


def _choice(value, options, name):
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def check_eigenvalues(eigenvalues, n_classes: int, *, name: str = "eigenvalues") -> np.ndarray:
    """(K,) positive finite float64."""
    ev = np.asarray(eigenvalues)
    if ev.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {ev.dtype}")
    ev = ev.astype(np.float64)
    if ev.shape != (n_classes,):
        raise ValueError(f"{name} must have shape ({n_classes},) (one per class), got {ev.shape}")
    if not np.all(np.isfinite(ev)) or np.any(ev <= 0):
        raise ValueError(f"{name} must be positive and finite, got min {np.nanmin(ev)!r}")
    return ev


def _scaled_rates(ev: np.ndarray, eigenvalue_scale: str) -> np.ndarray:
    _choice(eigenvalue_scale, _EIGEN_SCALES, "eigenvalue_scale")
    if eigenvalue_scale == "per_logit":
        return ev / ev.shape[0]
    if eigenvalue_scale == "mean":
        return ev / ev.mean()
    if eigenvalue_scale == "max":
        return ev / ev.max()
    return ev


def _evolve(log_init: np.ndarray, codes: np.ndarray, ev: np.ndarray, eta_t: float,
            eigenvalue_scale: str) -> np.ndarray:
    if not (isinstance(eta_t, (int, float, np.floating, np.integer)) and eta_t >= 0):
        raise ValueError(f"eta_t must be a non-negative number (inf allowed), got {eta_t!r}")
    rate = _scaled_rates(ev, eigenvalue_scale)
    with np.errstate(invalid="ignore"):
        keep = np.exp(-float(eta_t) * rate)            # weight of log_init, per class
    keep = np.nan_to_num(keep, nan=0.0)                # inf * 0 cannot happen (rate > 0)
    w = keep[codes][:, None]
    return (1.0 - w) * one_hot(codes, log_init.shape[1]) + w * log_init


def evolve_logits(log_init, labels, eigenvalues, eta_t: float = DEFAULT_ETA_T, *,
                  eigenvalue_scale: str = DEFAULT_EIGENVALUE_SCALE) -> np.ndarray:
    """LEAD Eq. 7 (Hu et al., CVPR 2024): for a sample of class k with one-hot y,
    ``F = (1 - exp(-eta_t * lambda_k')) * y + exp(-eta_t * lambda_k') * log_init`` with
    ``lambda' = lambda / K`` (``eigenvalue_scale="per_logit"``), unscaled (``"none"``), or the
    per-model deviations ``lambda / mean(lambda)`` (``"mean"``), ``/ max``. ``eta_t`` is the paper's eta * t. ``eta_t=0`` returns
    ``log_init``, ``eta_t=inf`` the one-hot labels. Columns of ``log_init`` and entries of
    ``eigenvalues`` follow the sorted unique labels.
    """
    codes, classes = encode_labels(labels)
    k = len(classes)
    li = check_matrix(log_init, name="log_init", n_rows=codes.shape[0])
    if li.shape[1] != k:
        raise ValueError(f"log_init has {li.shape[1]} columns but labels has {k} classes")
    ev = check_eigenvalues(eigenvalues, k)
    return _evolve(li, codes, ev, eta_t, eigenvalue_scale)


def image_log_likelihoods(final: np.ndarray, codes: np.ndarray, *, apply_softmax: bool = False) -> np.ndarray:
    """Per-image ``-CE(F_i, y_i)`` of the evolved ``final`` (N, K) at class codes ``codes``:
    ``log max(F_y, 1e-12)`` (F a probability vector, ``apply_softmax=False``) or
    ``log_softmax(F)_y`` (F as logits). Their mean is the LEAD score."""
    rows = np.arange(codes.shape[0])
    if apply_softmax:
        return _log_softmax(final)[rows, codes]
    return np.log(np.maximum(final[rows, codes], _LOG_FLOOR))
