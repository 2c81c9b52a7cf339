"""Input validation at the boundary of every metric (scikit-learn's ``check_X_y`` style).

Every public metric calls :func:`check_features_labels` first, so bad input fails with a
``ValueError`` that names the argument and the problem instead of producing a silent NaN.

The checks read the data without copying it (issue 17): finiteness is tested with one
matrix-vector product (NaN/inf propagate into the row sums; rows are inspected one by one
only when that product is not finite), and ``dtype=None`` keeps float32 features float32
instead of making a float64 copy, for metrics that accumulate their statistics in float64
chunk by chunk (``zoorank.metrics._blocked``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoorank.support.labels import encode_labels  # noqa: F401  (moved there; re-exported)


@dataclass(frozen=True)
class Checked:
    """Validated metric input.

    features: (N, D) float64 (float16/float32/int input is upcast), or with ``dtype=None``
        the input itself when it is float32/float64 (no copy).
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


def _finite_rows_fast(arr: np.ndarray) -> bool:
    """True when every entry of the 2-D float ``arr`` is finite, tested without a full-size
    temporary: NaN and inf propagate into the row sums ``arr @ 1`` (one multi-threaded BLAS
    pass); a non-finite sum is confirmed row by row (finite values whose sum overflows)."""
    ones = np.ones(arr.shape[1], dtype=arr.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        sums = arr @ ones
    if np.all(np.isfinite(sums)):
        return True
    return _count_bad_rows(arr, np.flatnonzero(~np.isfinite(sums))) == 0


def _count_bad_rows(arr: np.ndarray, rows: np.ndarray) -> int:
    step = 4096
    return sum(int(np.count_nonzero(~np.isfinite(arr[rows[s:s + step]]).all(axis=1)))
               for s in range(0, rows.shape[0], step))


def check_matrix(values, *, name: str, n_rows: int | None = None, dtype=np.float64,
                 finite: bool = True) -> np.ndarray:
    """A 2-D numeric matrix, optionally with ``n_rows`` rows, finite unless ``finite=False``.

    ``dtype=np.float64`` (default) returns float64 (a copy unless already float64);
    ``dtype=None`` returns float32 and float64 input as is (no copy) and upcasts the rest
    (ints, bools, float16) to float64. ``finite=False`` checks only shape and type (for
    metrics that never read the values, e.g. LEEP and NCE with their features).
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples x dims), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name} has {arr.shape[0]} rows but labels has {n_rows} entries")
    if dtype is None:
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
    else:
        arr = arr.astype(dtype, copy=False)
    if finite and not _finite_rows_fast(arr):
        bad = _count_bad_rows(arr, np.arange(arr.shape[0]))
        raise ValueError(f"{name} contains NaN or inf in {bad} row(s)")
    return arr


def check_features_labels(features, labels, *, min_classes: int = 2,
                          min_per_class: int = 1, dtype=np.float64,
                          finite: bool = True) -> Checked:
    """Validate ``features`` (N, D) and ``labels`` (N,) for a transferability metric.

    Raises ValueError naming the argument for: empty input, non-2-D or non-numeric
    features, NaN/inf, length mismatch, fewer than ``min_classes`` classes, or a class with fewer than ``min_per_class`` samples.
    ``dtype`` and ``finite`` are passed to :func:`check_matrix` (``dtype=None``: float32
    features stay float32, no copy; ``finite=False``: values not inspected).
    """
    codes, classes = encode_labels(labels)
    x = check_matrix(features, name="features", n_rows=codes.shape[0], dtype=dtype,
                     finite=finite)
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


def probability_rows(probs, *, name: str, n_rows: int, argmax: bool = False,
                     exact_sums: bool = True) -> tuple[np.ndarray, ...]:
    """Validate rows of probabilities without copying them: ``(probs, row_sums)``, or
    ``(probs, row_sums, row_argmax)`` with ``argmax=True``.

    ``probs`` (n_rows, C) is returned as given when float32/float64 (other numeric types are
    upcast to float64); entries must be non-negative and each row must sum to 1 within 1e-3
    (NaN and inf fail these two tests). ``row_sums`` (n_rows,) float64 lets a caller divide
    by the exact sums inside its own pass instead of holding a normalised copy. One pass in
    cache-sized row blocks computes the minimum, the row sums (and the row argmax, first
    maximum as ``np.argmax``), so the data is read from memory once. ``exact_sums=False``
    sums float32 rows in float32 (enough for the 1e-3 check; the returned sums are then
    not meant for renormalising).
    """
    p = check_matrix(probs, name=name, n_rows=n_rows, dtype=None, finite=False)
    n, c = p.shape
    sums = np.empty(n)
    top = np.empty(n, dtype=np.int64) if argmax else None
    lowest = np.inf
    step = max(1, (1 << 18) // c)              # ~1 MiB of float32: stays in cache
    for s in range(0, n, step):
        blk = p[s:s + step]
        lowest = np.minimum(lowest, blk.min())          # NaN propagates
        sums[s:s + step] = blk.sum(axis=1, dtype=np.float64 if exact_sums else None)
        if argmax:
            top[s:s + step] = blk.argmax(axis=1)
    if not lowest >= 0:          # NaN propagates through min and fails here too
        if np.isnan(lowest):
            raise ValueError(f"{name} contains NaN or inf")
        raise ValueError(f"{name} has negative entries; pass probabilities (softmax outputs), not logits")
    if not np.all(np.abs(sums - 1.0) <= 1e-3):   # inf rows fail here
        bad = sums[np.isfinite(sums)]
        lo, hi = (bad.min(), bad.max()) if bad.size else (np.inf, np.inf)
        raise ValueError(
            f"{name} rows must sum to 1 (found sums in [{lo:.4g}, {hi:.4g}]"
            f"{'' if bad.size == sums.size else ', and non-finite rows'}); apply softmax first")
    return (p, sums, top) if argmax else (p, sums)


def check_probabilities(probs, *, name: str, n_rows: int) -> np.ndarray:
    """Rows of non-negative numbers summing to 1 (tolerance 1e-3), shape (n_rows, C),
    returned as a float64 copy renormalised to sum to 1 exactly."""
    p, _ = probability_rows(probs, name=name, n_rows=n_rows)
    p = p.astype(np.float64)
    return p / p.sum(axis=1)[:, None]


def one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, K) float64 one-hot matrix of integer codes."""
    out = np.zeros((codes.shape[0], n_classes), dtype=np.float64)
    out[np.arange(codes.shape[0]), codes] = 1.0
    return out
