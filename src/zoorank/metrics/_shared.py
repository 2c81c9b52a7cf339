"""Per-pair memo of the statistics several metrics share (issue 17).

``PairStats(features, labels)`` is created once per (model, dataset) pair and passed as
``stats=`` to the metrics that accept it (H-score, regularised H-score, LogME, SFDA, PED,
ETran, TransRate); each statistic is computed on first use and reused by the others:

- ``class_stats``: class counts, class means and the global mean (one pass, float64);
- ``centred_cov``: squared norms of the centred rows and the biased covariance (one
  float64 ``syrk`` pass, the O(N D^2) step shared by H-score, the regularised H-score and
  LogME, whose ``F^T F = N (cov + mu mu^T)`` and one-hot ``F^T y_k = n_k m_k`` follow).

A memo only serves the exact arrays it was made for (the same objects); a metric given a
memo of other arrays raises instead of returning another pair's statistics.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from zoorank.metrics._blocked import centred_gram, class_stats


class PairStats:
    """Lazily computed, cached statistics of one (features, labels) pair."""

    def __init__(self, features, labels):
        self.features = features
        self.labels = labels
        self._cache: dict[str, object] = {}
        self.computed: list[str] = []          # names computed so far, in order (for tests)

    def check(self, features, labels) -> None:
        if features is not self.features or labels is not self.labels:
            raise ValueError("stats: this PairStats memo was made for other features/labels "
                             "(pass the same arrays, or no stats)")

    def get(self, name: str, compute: Callable[[], object]):
        if name not in self._cache:
            self._cache[name] = compute()
            self.computed.append(name)
        return self._cache[name]

    def class_stats(self, x: np.ndarray, codes: np.ndarray, n_classes: int):
        """``(counts, class means, global mean)`` of the validated arrays (float64)."""
        return self.get("class_stats", lambda: class_stats(x, codes, n_classes))

    def centred_cov(self, x: np.ndarray, codes: np.ndarray, n_classes: int):
        """``(row_sq (N,), cov (D, D))``: ``||x_i - mu||^2`` and ``(1/N) sum (x_i - mu)(x_i - mu)^T``."""
        def compute():
            _, _, mu = self.class_stats(x, codes, n_classes)
            row_sq = np.empty(x.shape[0])
            return row_sq, centred_gram(x, mu, row_sq=row_sq) / x.shape[0]
        return self.get("centred_cov", compute)


def pair_class_stats(stats: PairStats | None, features, labels, x, codes, n_classes):
    """Class statistics from ``stats`` (checked to belong to these arrays) or computed now."""
    if stats is None:
        return class_stats(x, codes, n_classes)
    stats.check(features, labels)
    return stats.class_stats(x, codes, n_classes)
