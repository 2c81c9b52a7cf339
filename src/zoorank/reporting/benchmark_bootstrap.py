"""Error bars of the benchmark: bootstrap CIs of every metric's mean weighted tau and regret, the
paired comparison of LEAD with each baseline, and the ranking-vs-fine-tuning compute ratio.

One bootstrap draw resamples both sources of noise a benchmark has (Efron & Tibshirani 1993,
ch. 13, percentile intervals):

* **the test images of every pair**: no per-image records exist, so resampling a trial's
  ``n_test`` test images with replacement is drawn as ``Binomial(n_test, p) / n_test`` correct
  (:func:`zoorank.metrics.evaluation.binomial_accuracy_draws`), then averaged over the pair's
  seeds like the pair's accuracy; every metric's tau and regret are recomputed against these
  accuracies (the metric scores stay fixed);
* **the datasets of the mean**: the same resampled datasets for every metric in one draw, so a
  paired difference cancels what the datasets share.

``truth`` is a table ``dataset, model, accuracy, n_test, seed_accuracies`` (a list per pair; the
linear probe's single accuracy for the second ground truth). Pure numpy / pandas
(docs/ground_truth.md, "Benchmark").
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from zoorank.metrics import evaluation


def _tau(scores: np.ndarray, acc: np.ndarray) -> float:
    if np.ptp(acc) == 0 or np.ptp(scores) == 0:
        return np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return evaluation.weighted_tau(scores, acc)


def _regret_draws(scores: np.ndarray, draws: np.ndarray, k: int) -> np.ndarray:
    """Top-k regret per draw (rows of ``draws``): the best accuracy minus the best of the k
    highest-scoring models (ties by model order, as :func:`evaluation.top_k_regret`)."""
    top = np.argsort(-scores, kind="stable")[:k]
    return draws.max(axis=1) - draws[:, top].max(axis=1)


def truth_draws(truth: pd.DataFrame, n_boot: int, rng) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Per dataset: (models, observed accuracies, ``n_boot x n_models`` resampled accuracies)."""
    out = {}
    for d, part in truth.groupby("dataset", sort=True):
        part = part.dropna(subset=["accuracy"])
        draws = np.column_stack([evaluation.binomial_accuracy_draws(r.seed_accuracies, r.n_test, n_boot, rng)
                                 for r in part.itertuples()]) if len(part) else np.empty((n_boot, 0))
        out[d] = (list(part["model"]), part["accuracy"].to_numpy(float), draws)
    return out


def per_draw_measures(scores: dict[str, pd.DataFrame], truth: pd.DataFrame, metrics: list[str], *,
                      n_boot: int = 2000, seed=0) -> dict:
    """Arrays ``n_boot x datasets x metrics`` of weighted tau, top-1 and top-3 regret against the
    resampled ground truth, and the observed values (``datasets x metrics``). A metric with fewer
    than 3 scored models on a dataset (or a constant draw) is NaN there."""
    rng = np.random.default_rng(seed)
    draws = truth_draws(truth, n_boot, rng)
    datasets = [d for d in draws if d in scores]
    shape = (n_boot, len(datasets), len(metrics))
    out = {k: np.full(shape, np.nan) for k in ("weighted_tau", "top1_regret", "top3_regret")}
    obs = {k: np.full(shape[1:], np.nan) for k in out}
    for i, d in enumerate(datasets):
        models, acc, dr = draws[d]
        sc = scores[d].drop_duplicates("model", keep="last").set_index("model").reindex(models)
        for j, m in enumerate(metrics):
            if m not in sc:
                continue
            s = pd.to_numeric(sc[m], errors="coerce").to_numpy(float)
            ok = np.isfinite(s)
            if ok.sum() < evaluation.MIN_MODELS:
                continue
            s, a, dm = s[ok], acc[ok], dr[:, ok]
            obs["weighted_tau"][i, j] = _tau(s, a)
            out["weighted_tau"][:, i, j] = [_tau(s, row) for row in dm]
            for k, name in ((1, "top1_regret"), (3, "top3_regret")):
                obs[name][i, j] = _regret_draws(s, a[None, :], min(k, s.size))[0]
                out[name][:, i, j] = _regret_draws(s, dm, min(k, s.size))
    return {"datasets": datasets, "metrics": list(metrics), "draws": out, "observed": obs,
            "dataset_index": rng.integers(0, max(len(datasets), 1), size=(n_boot, len(datasets)))}


def _resampled_means(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values`` (draws x datasets [x metrics]); per draw the NaN-skipping mean over the datasets
    ``index[b]`` drawn with replacement."""
    picked = np.take_along_axis(values, index.reshape(index.shape + (1,) * (values.ndim - 2)), axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(picked, axis=1)


def _ci(x: np.ndarray, level: float) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if not x.size:
        return np.nan, np.nan
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _nanmean(x, axis=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def interval_tables(measures: dict, *, level: float = 0.9, reference: str = "lead") -> dict[str, pd.DataFrame]:
    """From :func:`per_draw_measures`: ``tau`` (metric: mean over datasets, CI, datasets),
    ``regret`` (metric: top-1 / top-3 mean regret with CIs) and ``paired`` (baseline: the
    reference's and the baseline's mean tau, their difference with its CI, and ``lead_wins``, the
    fraction of draws in which the reference's mean tau is strictly higher)."""
    metrics, idx = measures["metrics"], measures["dataset_index"]
    tau = measures["draws"]["weighted_tau"]
    obs = measures["observed"]
    means = {k: _resampled_means(v, idx) for k, v in measures["draws"].items()}
    rows = []
    for j, m in enumerate(metrics):
        lo, hi = _ci(means["weighted_tau"][:, j], level)
        rows.append({"metric": m, "mean": _nanmean(obs["weighted_tau"][:, j]), "lo": lo, "hi": hi,
                     "n_datasets": int(np.isfinite(obs["weighted_tau"][:, j]).sum())})
    tau_t = pd.DataFrame(rows).set_index("metric").sort_values("mean", ascending=False)
    rows = []
    for j, m in enumerate(metrics):
        row = {"metric": m}
        for name, short in (("top1_regret", "top1"), ("top3_regret", "top3")):
            lo, hi = _ci(means[name][:, j], level)
            row |= {f"{short}_mean": _nanmean(obs[name][:, j]), f"{short}_lo": lo, f"{short}_hi": hi}
        rows.append(row)
    regret_t = pd.DataFrame(rows).set_index("metric").sort_values("top1_mean")
    rows = []
    if reference in metrics:
        r = metrics.index(reference)
        for j, m in enumerate(metrics):
            if j == r:
                continue
            diff = _resampled_means(tau[:, :, r] - tau[:, :, j], idx)
            ok = np.isfinite(diff)
            lo, hi = _ci(diff, level)
            both = np.isfinite(obs["weighted_tau"][:, r]) & np.isfinite(obs["weighted_tau"][:, j])
            rows.append({"baseline": m, f"{reference}_tau": _nanmean(obs["weighted_tau"][both, r]),
                         "baseline_tau": _nanmean(obs["weighted_tau"][both, j]),
                         "diff": _nanmean(obs["weighted_tau"][both, r] - obs["weighted_tau"][both, j]),
                         "lo": lo, "hi": hi, f"{reference}_wins": float(np.mean(diff[ok] > 0)) if ok.any() else np.nan,
                         "n_datasets": int(both.sum())})
    paired = pd.DataFrame(rows, columns=["baseline", f"{reference}_tau", "baseline_tau", "diff", "lo", "hi",
                                         f"{reference}_wins", "n_datasets"]).set_index("baseline")
    return {"tau": tau_t, "regret": regret_t, "paired": paired.sort_values("diff")}


def where_reference_loses(tables: dict, measures: dict, reference: str = "lead", ground_truth: str = "") -> str:
    """One sentence: the reference's place by mean tau, the baselines ahead of it (with how often
    it wins against them) and the datasets where another metric beats it."""
    tau, paired = tables["tau"], tables["paired"]
    if reference not in tau.index or not np.isfinite(tau.loc[reference, "mean"]):
        return f"{reference} has no weighted tau on this ground truth{ground_truth}."
    place = list(tau.index).index(reference) + 1
    ahead = [m for m in tau.index[:place - 1]]
    wins = paired[f"{reference}_wins"] if len(paired) else pd.Series(dtype=float)
    parts = [f"{reference} ranks {place} of {len(tau)} by mean weighted tau{ground_truth} "
             f"({tau.loc[reference, 'mean']:.3f}, 90% CI {tau.loc[reference, 'lo']:.3f} to "
             f"{tau.loc[reference, 'hi']:.3f})"]
    if ahead:
        parts.append("behind " + ", ".join(f"{m} ({tau.loc[m, 'mean']:.3f}; {reference} wins "
                                           f"{wins.get(m, np.nan):.0%} of draws)" for m in ahead))
    obs, metrics = measures["observed"]["weighted_tau"], measures["metrics"]
    r = metrics.index(reference)
    lost = []
    for i, d in enumerate(measures["datasets"]):
        row = obs[i]
        if np.isfinite(row[r]) and np.nanmax(row) > row[r]:
            best = metrics[int(np.nanargmax(row))]
            lost.append(f"{d} ({row[r]:.3f} against {best}'s {np.nanmax(row):.3f})")
    if lost:
        parts.append("below the best metric on " + "; ".join(lost))
    return "; ".join(parts) + "."


def compute_ratio(ranking: pd.DataFrame, finetune: pd.DataFrame, ranking_cpu: dict | None = None, *,
                  full_samples: float | None = None) -> pd.DataFrame:
    """Ranking compute against ground-truth compute on the same pairs, per dataset and in total.

    ``ranking``: ``dataset, model, seconds`` (the rank flow's per-pair stage seconds, cold);
    ``finetune``: ``dataset, model, trial_seconds, probe_seconds`` and optionally ``samples`` (training
    images processed by the pair's trials, sum of steps x batch); ``ranking_cpu``: optional
    ``{dataset: CPU seconds of the whole ranking process}``. Only pairs present in both count.
    Ratio columns: ranking / fine-tuning (the issue's target: <= 0.01). With ``full_samples`` (the
    training images one pair gets under the literature's protocol) and ``samples``, also a
    *projection*: ``full_seconds`` = trial seconds per training image x ``full_samples`` (the
    measured per-image cost of the same backbone at the same resolution; evaluation not counted,
    so the projection is a lower bound) and ``ratio_cpu_full`` = ranking CPU / that."""
    project = full_samples is not None and "samples" in finetune
    cols = ["dataset", "model", "trial_seconds", "probe_seconds", *(["samples"] if project else [])]
    merged = ranking[["dataset", "model", "seconds"]].merge(finetune[cols], on=["dataset", "model"])
    if merged.empty:
        raise ValueError("no (dataset, model) pair has both a ranking time and fine-tuning seconds")
    merged["finetune_seconds"] = merged["trial_seconds"] + merged["probe_seconds"]
    if project:
        merged["full_seconds"] = merged["trial_seconds"] / merged["samples"] * float(full_samples)
    cpu = dict(ranking_cpu or {})
    sums = ["ranking_pair_seconds", "finetune_seconds", *(["full_seconds"] if project else [])]
    rows = []
    for d, part in merged.groupby("dataset", sort=True):
        rows.append({"dataset": d, "n_pairs": len(part), "ranking_pair_seconds": part["seconds"].sum(),
                     "ranking_cpu_seconds": cpu.get(d, np.nan), "finetune_seconds": part["finetune_seconds"].sum(),
                     **({"full_seconds": part["full_seconds"].sum()} if project else {})})
    out = pd.DataFrame(rows)
    total = {"dataset": "total", "n_pairs": int(out["n_pairs"].sum()),
             "ranking_cpu_seconds": out["ranking_cpu_seconds"].sum(min_count=len(out)),
             **{c: out[c].sum() for c in sums}}
    out = pd.concat([out, pd.DataFrame([total])], ignore_index=True)
    out["ratio_pair_seconds"] = out["ranking_pair_seconds"] / out["finetune_seconds"]
    out["ratio_cpu"] = out["ranking_cpu_seconds"] / out["finetune_seconds"]
    if project:
        out["ratio_cpu_full"] = out["ranking_cpu_seconds"] / out["full_seconds"]
    return out.set_index("dataset")


__all__ = ["truth_draws", "per_draw_measures", "interval_tables", "where_reference_loses", "compute_ratio"]
