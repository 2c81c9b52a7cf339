"""Centred kernel alignment with a label kernel, shared by LGC and LFC (Deshpande et al. 2021,
"A linearized framework and a new benchmark for model selection for fine-tuning",
arXiv 2102.00084).

- :func:`label_similarity`: ``Y_ij = +1`` if samples i and j share a class, ``-1`` otherwise.
- :func:`centered_alignment`: ``<H K H, H Y H>_F / (||H K H||_F ||H Y H||_F)`` with the
  centring matrix ``H = I - 11^T / n`` (Cortes, Mohri & Rostamizadeh 2012), a number in
  [-1, 1], invariant to a common permutation of the samples and to positive rescaling of
  either matrix.
"""
from __future__ import annotations

import numpy as np

from zoorank.metrics.validation import encode_labels


def label_similarity(codes) -> np.ndarray:
    """(n, n) float64 matrix, +1 where the two samples have the same label, -1 otherwise.

    ``codes`` may be any 1-D labels (ints, strings); only equality matters.
    """
    c, _ = encode_labels(codes, name="codes")
    return np.where(c[:, None] == c[None, :], 1.0, -1.0)


def _square(m, name: str) -> np.ndarray:
    a = np.asarray(m)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def center_kernel(m: np.ndarray) -> np.ndarray:
    """``H m H`` with ``H = I - 11^T/n`` (double centring), without forming H."""
    return m - m.mean(axis=0, keepdims=True) - m.mean(axis=1, keepdims=True) + m.mean()


def centered_alignment(gram, target) -> float:
    """Centred alignment ``<HKH, HYH>_F / (||HKH||_F ||HYH||_F)`` of two (n, n) matrices.

    Raises ValueError if the shapes differ or either matrix is constant after centring
    (the alignment is then undefined, e.g. identical features or a single class).
    """
    k = _square(gram, "gram")
    y = _square(target, "target")
    if k.shape != y.shape:
        raise ValueError(f"gram {k.shape} and target {y.shape} must have the same shape")
    kc, yc = center_kernel(k), center_kernel(y)
    nk, ny = np.linalg.norm(kc), np.linalg.norm(yc)
    # "constant" = the centred part is at rounding level relative to the whole matrix
    if nk <= 1e-10 * np.linalg.norm(k) or nk == 0.0:
        raise ValueError("gram is constant after centring (all samples look alike); alignment undefined")
    if ny <= 1e-10 * np.linalg.norm(y) or ny == 0.0:
        raise ValueError("target is constant after centring (one class only?); alignment undefined")
    return float(np.vdot(kc, yc) / (nk * ny))
