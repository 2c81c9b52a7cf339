"""How well a transferability metric ranks models: agreement with fine-tuned accuracy.

- weighted Kendall's tau exactly as the literature computes it (LogME, SFDA, ETran, LEAD):
  ``scipy.stats.weightedtau(scores, accuracies)`` with defaults (hyperbolic weigher
  1/(r+1), rank=True: weights from the decreasing-order ranks of both arguments, averaged);
- plain Kendall tau-b, Pearson correlation;
- top-k regret: accuracy lost by fine-tuning the best of the metric's top-k models instead
  of the best model overall, ``max(acc) - max(acc[top_k(scores)])`` (in accuracy units);
- over datasets: the percentile bootstrap confidence interval of a method's mean (e.g. of its
  per-dataset weighted tau; Efron & Tibshirani 1993, ch. 13) and the paired bootstrap of the
  difference between two methods on the same datasets (resampling datasets, both methods
  together, so what the datasets share cancels);
- first places over resamples (:func:`first_place_shares`), the tie sets' count.
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


def first_place_shares(scores) -> np.ndarray:
    """Per row of ``scores`` (models x resamples, higher = better) the number of resamples it comes
    first in; models tied for first (within 1e-12 relative) split that resample's win evenly, so the
    counts sum to the number of resamples."""
    s = np.asarray(scores, dtype=np.float64)
    best = s.max(axis=0)
    first = s >= best - 1e-12 * np.maximum(1.0, np.abs(best))
    return (first / first.sum(axis=0)).sum(axis=1)


def _per_dataset(values, name: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError(f"{name} is empty: a bootstrap over datasets needs at least one dataset")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite (one value per dataset; drop datasets a method could not rank)")
    return v


def _resample_means(v: np.ndarray, n_boot: int, seed) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement, of the same size) of ``v``."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    return v[idx].mean(axis=1)


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    lo, hi = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def bootstrap_mean_ci(values, *, level: float = 0.9, n_boot: int = 10_000, seed=0) -> dict[str, float]:
    """Percentile bootstrap CI of the mean of per-dataset values (e.g. a method's weighted tau on
    each dataset): resample the datasets with replacement ``n_boot`` times. Returns ``mean``,
    ``lo``, ``hi``, ``n`` (datasets). With one dataset the interval is the value itself: the
    bootstrap cannot see the spread across datasets it does not have."""
    v = _per_dataset(values)
    lo, hi = _interval(_resample_means(v, n_boot, seed), level)
    return {"mean": float(v.mean()), "lo": lo, "hi": hi, "n": int(v.size)}


def paired_bootstrap_difference(values_a, values_b, *, level: float = 0.9, n_boot: int = 10_000,
                                seed=0) -> dict[str, float]:
    """Paired bootstrap of ``mean(a) - mean(b)`` over datasets (``a[i]``, ``b[i]``: two methods on
    dataset ``i``): each resample draws datasets and takes both methods' values on them. Returns
    ``diff`` (observed), ``lo``, ``hi`` (percentile CI at ``level``), ``p_not_better`` (share of
    resamples with a difference <= 0: a one-sided bootstrap p-value for "a beats b") and ``n``."""
    a = _per_dataset(values_a, "values_a")
    b = _per_dataset(values_b, "values_b")
    if a.shape != b.shape:
        raise ValueError(f"paired values need one entry per dataset for both methods: "
                         f"{a.size} against {b.size}")
    draws = _resample_means(a - b, n_boot, seed)
    lo, hi = _interval(draws, level)
    return {"diff": float((a - b).mean()), "lo": lo, "hi": hi,
            "p_not_better": float(np.mean(draws <= 0.0)), "n": int(a.size)}


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



def binomial_accuracy_draws(seed_accuracies, n_test: int, n_boot: int, rng) -> np.ndarray:
    """Bootstrap draws of a pair's accuracy when its test images are resampled: drawing ``n_test``
    images with replacement from a test set on which a trial scored ``p`` gives
    ``Binomial(n_test, p) / n_test`` correct; one such draw per trial (seed), then the mean over
    seeds, as the pair's accuracy is. Returns ``n_boot`` values. ``p`` in {0, 1} has no spread."""
    p = np.asarray(seed_accuracies, dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"seed accuracies must be finite values in [0, 1], got {p.tolist()}")
    if int(n_test) < 1:
        raise ValueError(f"n_test must be >= 1 test image, got {n_test}")
    return (rng.binomial(int(n_test), p, size=(int(n_boot), p.size)) / int(n_test)).mean(axis=1)
