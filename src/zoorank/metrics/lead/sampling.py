"""LEAD's sample choices, numpy only: the SVM's cross-fitting folds and fit subset, the NTK's S
samples per class, all from a seeded key of each sample's identity (``docs/science.md``,
"Sample identity"; ``docs/lead.md``)."""
from __future__ import annotations

import numpy as np

from zoorank.metrics._common import _splitmix64

# salts that derive independent per-purpose keys from one row hash
_SALT_FOLDS = np.uint64(0x9E3779B97F4A7C15)
_SALT_FIT = np.uint64(0xD1B54A32D192ED03)
_SALT_NTK = np.uint64(0x8CB92BA72F3D8DD7)


def _purpose_keys(base: np.ndarray, salt: np.uint64) -> np.ndarray:
    return _splitmix64(base ^ salt)


def stratified_folds(codes: np.ndarray, keys: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold index (N,) of every sample: stratified and independent of the row order.

    Inside each class the samples are ranked by ``keys`` and dealt round-robin to the
    folds, starting at ``(global rank of the class's first sample) mod n_folds`` so that
    small classes do not all start in fold 0. A class with fewer samples than folds
    therefore has at most one sample per fold.
    """
    n = codes.shape[0]
    order = np.lexsort((keys, codes))                      # by class, then key
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_in_class = np.empty(n, dtype=np.int64)
    rank_in_class[order] = np.arange(n) - starts[codes[order]]
    global_rank = np.empty(n, dtype=np.int64)
    global_rank[np.argsort(keys, kind="stable")] = np.arange(n)
    first = order[starts[counts > 0]]                      # first (smallest-key) sample per class
    offset = np.zeros(counts.shape[0], dtype=np.int64)
    offset[codes[first]] = global_rank[first] % n_folds
    return (rank_in_class + offset[codes]) % n_folds


def _smallest_keys_per_class(codes: np.ndarray, keys: np.ndarray, quota: np.ndarray) -> np.ndarray:
    """Indices of the ``quota[k]`` samples with the smallest keys in each class k, in
    (class, key) order."""
    n = codes.shape[0]
    order = np.lexsort((keys, codes))
    counts = np.bincount(codes, minlength=quota.shape[0])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(n) - starts[codes[order]]
    return order[pos < quota[codes[order]]]


def _fit_subset(codes: np.ndarray, keys: np.ndarray, max_samples: int | None) -> np.ndarray:
    """Stratified, order-independent subset of about ``max_samples`` rows (>= 1 per class)."""
    n = codes.shape[0]
    counts = np.bincount(codes)
    if max_samples is None or n <= max_samples:
        quota = counts
    else:
        quota = np.maximum(np.minimum(counts, 1), np.floor(counts * (max_samples / n)).astype(np.int64))
    return _smallest_keys_per_class(codes, keys, quota)


def ntk_sample_rows(codes: np.ndarray, keys: np.ndarray, samples_per_class: int) -> np.ndarray:
    """Rows of the NTK sample: per class the ``min(n_k, S)`` rows with the smallest NTK key, in
    (class, key) order (so the sample for a smaller S is a prefix of each class's rows)."""
    counts = np.bincount(codes)
    return _smallest_keys_per_class(codes, _purpose_keys(keys, _SALT_NTK),
                                    np.minimum(counts, int(samples_per_class)))
