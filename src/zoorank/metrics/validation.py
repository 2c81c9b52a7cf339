"""Input validation at the boundary of every metric (scikit-learn's ``check_X_y`` style).

Every public metric calls :func:`check_features_labels` first, so bad input fails with a
``ValueError`` that names the argument and the problem instead of producing a silent NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Checked:
    """Validated metric input.

    features: (N, D) float64 (float16/float32/int input is upcast).
    labels:   (N,) int64 codes in 0..K-1.
    classes:  the original label values, ``classes[code]`` (sorted, as ``np.unique``).
    """

    features: np.ndarray
    labels: np.ndarray
    classes: np.ndarray

    @property
    def n_samples(self) -> int:
        return self.features.shape[0]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def encode_labels(labels, *, name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary hashable labels (ints, strings) to codes 0..K-1 (sorted order)."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: need at least one sample per class")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} has non-integer float values; pass integer or string class labels")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iuUSOb":
        raise ValueError(f"{name} has unsupported dtype {arr.dtype}")
    try:
        classes, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:  # mixed object types that cannot be ordered
        raise ValueError(f"{name} mixes label types that cannot be compared: {exc}") from None
    return codes.astype(np.int64).reshape(-1), classes


def check_matrix(values, *, name: str, n_rows: int | None = None) -> np.ndarray:
    """A finite 2-D float64 matrix, optionally with ``n_rows`` rows."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples x dims), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but labels has {n_rows} entries")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr).all(axis=1)))
        raise ValueError(f"{name} contains NaN or inf in {bad} row(s)")
    return arr


def check_features_labels(features, labels, *, min_classes: int = 2,
                          min_per_class: int = 1) -> Checked:
    """Validate ``features`` (N, D) and ``labels`` (N,) for a transferability metric.

    Raises ValueError naming the argument for: empty input, non-2-D or non-numeric
    features, NaN/inf, length mismatch, fewer than ``min_classes`` classes, or a class with fewer than ``min_per_class`` samples.
    """
    codes, classes = encode_labels(labels)
    x = check_matrix(features, name="features", n_rows=codes.shape[0])
    k = len(classes)
    if k < min_classes:
        raise ValueError(
            f"labels has {k} distinct class(es); ranking by transferability needs at least {min_classes}")
    if min_per_class > 1:
        counts = np.bincount(codes, minlength=k)
        if counts.min() < min_per_class:
            worst = classes[int(np.argmin(counts))]
            raise ValueError(
                f"labels: class {worst!r} has {counts.min()} sample(s); this metric needs at least {min_per_class} per class")
    return Checked(x, codes, classes)


def check_probabilities(probs, *, name: str, n_rows: int) -> np.ndarray:
    """Rows of non-negative numbers summing to 1 (tolerance 1e-3), shape (n_rows, C)."""
    p = check_matrix(probs, name=name, n_rows=n_rows)
    if p.min() < 0:
        raise ValueError(f"{name} has negative entries; pass probabilities (softmax outputs), not logits")
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        raise ValueError(
            f"{name} rows must sum to 1 (found sums in [{sums.min():.4g}, {sums.max():.4g}]); apply softmax first")
    return p / sums[:, None]


def one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, K) float64 one-hot matrix of integer codes."""
    out = np.zeros((codes.shape[0], n_classes), dtype=np.float64)
    out[np.arange(codes.shape[0]), codes] = 1.0
    return out
