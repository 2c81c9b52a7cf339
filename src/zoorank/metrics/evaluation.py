"""How well a transferability metric ranks models: agreement with fine-tuned accuracy.

- weighted Kendall's tau exactly as the literature computes it (LogME, SFDA, ETran, LEAD):
  ``scipy.stats.weightedtau(scores, accuracies)`` with defaults (hyperbolic weigher
  1/(r+1), rank=True: weights from the decreasing-order ranks of both arguments, averaged);
- plain Kendall tau-b, Pearson correlation;
- top-k regret: accuracy lost by fine-tuning the best of the metric's top-k models instead
  of the best model overall, ``max(acc) - max(acc[top_k(scores)])`` (in accuracy units).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

MIN_MODELS = 3


def _paired(scores, accuracies) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    a = np.asarray(accuracies, dtype=np.float64).reshape(-1)
    if s.shape != a.shape:
        raise ValueError(f"scores has {s.size} entries but accuracies has {a.size}")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(a))):
        raise ValueError("scores and accuracies must be finite (drop failed pairs first)")
    if s.size < MIN_MODELS:
        raise ValueError(
            f"rank correlation needs at least {MIN_MODELS} models, got {s.size}: tau is undefined")
    return s, a


def weighted_tau(scores, accuracies) -> float:
    """Weighted Kendall's tau, ``scipy.stats.weightedtau(scores, accuracies)`` with defaults."""
    s, a = _paired(scores, accuracies)
    return float(stats.weightedtau(s, a).statistic)


def kendall_tau(scores, accuracies) -> float:
    """Kendall's tau-b between scores and accuracies."""
    s, a = _paired(scores, accuracies)
    return float(stats.kendalltau(s, a).statistic)


def pearson(scores, accuracies) -> float:
    """Pearson correlation; NaN-free: a constant vector gives 0.0 (no linear signal)."""
    s, a = _paired(scores, accuracies)
    if np.ptp(s) == 0 or np.ptp(a) == 0:
        return 0.0
    return float(stats.pearsonr(s, a).statistic)


def top_k_regret(scores, accuracies, k: int = 1) -> float:
    """``max(acc) - max(acc[i] for i in the k highest-scoring models)``; 0 is perfect.

    Ties in the scores are broken by model order (stable sort), deterministically.
    """
    s, a = _paired(scores, accuracies)
    if not 1 <= k <= s.size:
        raise ValueError(f"k must be in 1..{s.size}, got {k}")
    top = np.argsort(-s, kind="stable")[:k]
    return float(a.max() - a[top].max())


def evaluate_ranking(scores, accuracies) -> dict[str, float]:
    """All measures at once: weighted_tau, kendall_tau, pearson, top1_regret, top3_regret."""
    s, a = _paired(scores, accuracies)
    return {
        "weighted_tau": weighted_tau(s, a),
        "kendall_tau": kendall_tau(s, a),
        "pearson": pearson(s, a),
        "top1_regret": top_k_regret(s, a, 1),
        "top3_regret": top_k_regret(s, a, min(3, s.size)),
    }

