"""Class labels -> codes 0..K-1: the one label encoder of the package (metrics and data both use it).

``encode_labels`` returns ``(codes, classes)`` in sorted class order (``np.unique``'s), with a
clear error naming the argument for bad input; moved here from ``metrics/validation.py`` so that
the data layer (splits, subsets) and the science share it without importing each other.
"""
from __future__ import annotations

import numpy as np

__all__ = ["encode_labels"]


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
    if arr.dtype.kind in "iu" and arr.min() >= 0 and arr.max() <= 4 * arr.size + 1024:
        # small non-negative integers: classes from a bincount, codes from a lookup table
        # (O(N), no sort; same result as np.unique)
        present = np.flatnonzero(np.bincount(arr))
        lookup = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        lookup[present] = np.arange(present.size)
        return lookup[arr], present.astype(arr.dtype)
    try:
        classes, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:  # mixed object types that cannot be ordered
        raise ValueError(f"{name} mixes label types that cannot be compared: {exc}") from None
    return codes.astype(np.int64).reshape(-1), classes
