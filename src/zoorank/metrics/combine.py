"""Rankers that learn from the zoo's history: priors and a combined ranking (issue 15).

A *history* is a table of past fine-tuning results, one row per (dataset, model) with its
accuracy, and the metric scores those pairs got (``scores``: one row per (dataset, model),
one column per metric or prior). Everything here is a pure function of such tables (numpy,
pandas, scipy): no I/O, no tracking store.

- :func:`history_mean`: each model's mean within-dataset standardised accuracy on the other
  datasets of the history (the prior that beats most metrics on public tables: Singh, Hess &
  Vanschoren 2025, arXiv 2510.06448; mean weighted tau 0.83 on the SFDA/ETran 11 x 11 table).
- :func:`standardise`: per-dataset transform that makes scores on raw, incomparable scales
  comparable across datasets (``"rank"``: centred ranks in [-1, 1]; ``"zscore"``).
- :func:`fit_pairwise` / :class:`Combination`: a linear pairwise logistic ranker (RankNet with a
  linear scorer, Burges et al. 2005) with an L2 penalty, fitted on every ordered pair of models
  inside each history dataset, weighted by their accuracy gap. Fitted only on datasets other
  than the one being ranked: :func:`combined_scores` drops it before fitting.
- :func:`fit_stacking`: rank stacking, each input weighted by its mean weighted tau on the
  history's datasets (clipped at 0); :func:`default_combination` with ``"zscore"`` is the z-mean.
- :func:`input_table` / :func:`training_inputs`: the inputs of one dataset (metric scores and
  priors) and of every history dataset but the ranked one, ``history_mean`` computed without
  the row's own dataset and without the ranked one (nested leave-one-out: no leakage).
- :func:`rank_with_history`: the ``combined`` column of one dataset by a chosen method
  (:data:`METHODS`; :data:`DEFAULT_METHOD` is the one benchmarks/bench_combined.py measured best).
- Without history: :func:`default_combination`, equal weights on the standardised scores of the
  inputs present (rank averaging, a Borda count), documented in docs/combined.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.special

TRANSFORMS = ("rank", "zscore")


def standardise(values: pd.Series, transform: str = "rank") -> pd.Series:
    """Within-dataset standardisation of one column over the models (NaN stays NaN).

    ``"rank"``: average ranks mapped to [-1, 1] (``2 (r - 1) / (m - 1) - 1``; 0 for m = 1);
    ``"zscore"``: ``(v - mean) / std`` (0 where the std is 0)."""
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    v = pd.to_numeric(values, errors="coerce").astype(float)
    ok = v.notna()
    out = pd.Series(np.nan, index=v.index)
    m = int(ok.sum())
    if m == 0:
        return out
    if transform == "rank":
        r = v[ok].rank(method="average")
        out[ok] = 0.0 if m == 1 else 2.0 * (r - 1.0) / (m - 1.0) - 1.0
    else:
        sd = float(v[ok].std(ddof=0))
        out[ok] = 0.0 if sd == 0 else (v[ok] - v[ok].mean()) / sd
    return out


def standardise_frame(scores: pd.DataFrame, columns, transform: str = "rank") -> pd.DataFrame:
    """``scores`` (columns ``dataset``, ``model`` and ``columns``) standardised per dataset: the
    same values as :func:`standardise` on each dataset's column, vectorised over the datasets."""
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    out = scores[["dataset", "model"]].copy()
    for c in columns:
        v = pd.to_numeric(scores[c], errors="coerce").astype(float)
        g = v.groupby(scores["dataset"])
        m = g.transform("count")
        if transform == "rank":
            r = g.rank(method="average")
            z = np.where(m > 1, 2.0 * (r - 1.0) / (m - 1.0).where(m > 1, 1.0) - 1.0, 0.0)
        else:
            sd = g.transform(lambda x: x.std(ddof=0))
            z = np.where(sd > 0, (v - g.transform("mean")) / sd.where(sd > 0, 1.0), 0.0)
        out[c] = np.where(v.notna(), z, np.nan)
    return out


def history_mean(history: pd.DataFrame, models, dataset: str, *, transform: str = "zscore") -> pd.Series:
    """Prior ``history_mean``: for each model, the mean over the history's datasets other than
    ``dataset`` of its accuracy, standardised within each dataset (``"zscore"``, default: a
    model seen only on easy datasets is not favoured; ``"rank"``) or as it is (``"raw"``, the
    published prior). NaN for a model the history has not seen elsewhere. ``history`` has
    columns ``dataset``, ``model``, ``accuracy``."""
    other = history[history["dataset"] != dataset]
    if other.empty:
        return pd.Series(np.nan, index=pd.Index(list(models), name="model"))
    other = other.rename(columns={"accuracy": "acc"})
    z = other if transform == "raw" else standardise_frame(other, ["acc"], transform)
    return z.groupby("model")["acc"].mean().reindex(list(models))


@dataclass(frozen=True)
class Combination:
    """A linear scorer over standardised inputs: ``combined = sum_c w_c z_c`` (missing z = 0,
    the within-dataset middle). ``fitted_on`` names the history datasets it learned from
    (empty for the default)."""

    weights: dict[str, float]
    transform: str = "rank"
    fitted_on: tuple[str, ...] = ()
    note: str = ""
    notes: list[str] = field(default_factory=list)
    method: str = "default"
    l2: float | None = None            # the pairwise methods' L2 strength

    @property
    def learned(self) -> bool:
        return bool(self.fitted_on)

    def score(self, table: pd.DataFrame) -> pd.Series:
        """Combined score of each row of ``table`` (one dataset: columns = inputs)."""
        total = pd.Series(0.0, index=table.index)
        for c, w in self.weights.items():
            if c in table:
                total = total + w * standardise(table[c], self.transform).fillna(0.0)
        return total


def default_combination(columns, transform: str = "rank") -> Combination:
    """Equal weights on every input present (a Borda count of the standardised scores)."""
    cols = list(columns)
    if not cols:
        raise ValueError("a combination needs at least one metric or prior column")
    what = "rank average" if transform == "rank" else "z-score mean"
    return Combination({c: 1.0 / len(cols) for c in cols}, transform,
                       note=f"no usable history: equal-weight {what} of the inputs (default)",
                       method="rankmean" if transform == "rank" else "zmean")


def standardised_by_dataset(scores: pd.DataFrame, history: pd.DataFrame, columns, transform: str = "rank",
                            exclude: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per history dataset (never ``exclude``): the standardised inputs (models x columns, missing = 0)
    and the accuracies of the models that have both scores and ground truth."""
    columns = list(columns)
    merged = scores.merge(history[["dataset", "model", "accuracy"]], on=["dataset", "model"])
    if exclude is not None:
        merged = merged[merged["dataset"] != exclude]
    z = standardise_frame(merged, columns, transform)
    return {str(d): (z.loc[idx, columns].fillna(0.0).to_numpy(float), merged.loc[idx, "accuracy"].to_numpy(float))
            for d, idx in z.groupby("dataset").groups.items()}


def _pairs(x: np.ndarray, a: np.ndarray, min_gap: float):
    """Feature differences and weights of every ordered pair (better, worse) of one dataset."""
    i, j = np.nonzero(a[:, None] - a[None, :] > min_gap)
    return x[i] - x[j], a[i] - a[j]


def _newton_logistic(dx: np.ndarray, g: np.ndarray, l2: float, *, tol: float = 1e-10,
                     max_iter: int = 100) -> np.ndarray:
    """Minimiser of ``sum_k g_k log(1 + exp(-w . dx_k)) + l2 |w|^2 / 2`` (strictly convex for
    l2 > 0) by Newton's method with backtracking: gradient ``-dx^T (g sigma(-m)) + l2 w``, Hessian
    ``dx^T diag(g sigma(m) sigma(-m)) dx + l2 I``; stops when the gradient's max-norm < ``tol``."""
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0 (the pairwise loss alone may have no minimiser), got {l2}")
    w = np.zeros(dx.shape[1])

    def value(w):
        return float(np.sum(g * np.logaddexp(0.0, -(dx @ w))) + 0.5 * l2 * w @ w)

    f = value(w)
    for _ in range(max_iter):
        m = dx @ w
        p = scipy.special.expit(-m)
        grad = -(dx.T @ (g * p)) + l2 * w
        if np.max(np.abs(grad)) < tol:
            break
        hess = (dx * (g * p * (1.0 - p))[:, None]).T @ dx + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-8:
            f_new = value(w - t * step)
            if f_new <= f - 1e-4 * t * float(grad @ step):
                break
            t *= 0.5
        w, f = w - t * step, f_new
    return w


def _fit_pairs(data: dict, columns, transform: str, l2: float, min_gap: float) -> Combination:
    diffs, gaps, used = [], [], []
    for d, (x, a) in sorted(data.items()):
        dx, g = _pairs(x, a, min_gap)
        if len(g):
            diffs.append(dx)
            gaps.append(g)
            used.append(d)
    if not used:
        return default_combination(columns, transform)
    dx, g = np.concatenate(diffs), np.concatenate(gaps)
    g = g / g.sum()

    w = _newton_logistic(dx, g, l2)
    return Combination(dict(zip(columns, map(float, w))), transform, tuple(used),
                       note=f"learned from {len(used)} history dataset(s): {', '.join(used)}",
                       method="pairwise_z" if transform == "zscore" else "pairwise", l2=float(l2))


def fit_pairwise(scores: pd.DataFrame, history: pd.DataFrame, columns, *, exclude: str | None = None,
                 transform: str = "rank", l2: float = 1.0, min_gap: float = 0.0) -> Combination:
    """RankNet-style linear pairwise logistic ranker on the history's datasets (never on
    ``exclude``, the dataset being ranked): minimise
    ``sum_d sum_{acc_i > acc_j} g_ij log(1 + exp(-w . (z_i - z_j))) / sum g + l2 ||w||^2 / 2``
    with ``g_ij`` the accuracy gap. Falls back to :func:`default_combination` (and says why)
    when no dataset other than ``exclude`` has at least two models with different accuracy."""
    columns = list(columns)
    data = standardised_by_dataset(scores, history, columns, transform, exclude)
    return _fit_pairs(data, columns, transform, l2, min_gap)


def fit_stacking(scores: pd.DataFrame, history: pd.DataFrame, columns, *, exclude: str | None = None,
                 transform: str = "rank") -> Combination:
    """Rank stacking: each input's weight is its mean weighted tau (scipy's weightedtau, the
    benchmark's measure) against the accuracies of the history's datasets other than ``exclude``,
    clipped at 0, normalised to sum 1 (an input that does not rank the history well gets none).
    Per dataset only models with a score count; at least 3 are needed. Falls back to
    :func:`default_combination` when no input has a positive mean tau."""
    from scipy.stats import weightedtau

    columns = list(columns)
    merged = scores.merge(history[["dataset", "model", "accuracy"]], on=["dataset", "model"])
    if exclude is not None:
        merged = merged[merged["dataset"] != exclude]
    taus: dict[str, list[float]] = {c: [] for c in columns}
    used = set()
    for d, part in merged.groupby("dataset"):
        acc = part["accuracy"].to_numpy(float)
        for c in columns:
            v = pd.to_numeric(part[c], errors="coerce").to_numpy(float)
            ok = np.isfinite(v) & np.isfinite(acc)
            if ok.sum() >= 3 and np.ptp(v[ok]) > 0 and np.ptp(acc[ok]) > 0:
                taus[c].append(float(weightedtau(v[ok], acc[ok]).statistic))
                used.add(str(d))
    w = {c: max(0.0, float(np.mean(t))) if t else 0.0 for c, t in taus.items()}
    total = sum(w.values())
    if total <= 0:
        return default_combination(columns, transform)
    return Combination({c: v / total for c, v in w.items()}, transform, tuple(sorted(used)),
                       note=f"rank stacking learned from {len(used)} history dataset(s): {', '.join(sorted(used))}",
                       method="stacking")


#: combination models: pairwise (RankNet, centred ranks), pairwise_z (RankNet, z-scores), stacking
#: (tau-weighted rank average), zmean / rankmean (equal weights, no learning)
METHODS = ("pairwise", "pairwise_z", "stacking", "zmean", "rankmean")
#: chosen by benchmarks/bench_combined.py (docs/combined.md, "Which combination"): the best on the
#: published table (0.827) and within 0.009 of the best combination on the partial new ground truth
DEFAULT_METHOD = "pairwise_z"


#: L2 strengths tried by :func:`fit_pairwise_cv`
L2_GRID = (1.0, 0.1, 0.01, 0.001)


def _tau(x: np.ndarray, a: np.ndarray, comb: Combination) -> float:
    from scipy.stats import weightedtau

    s = x @ np.array([comb.weights[c] for c in comb.weights])
    if len(a) < 3 or np.ptp(s) == 0 or np.ptp(a) == 0:
        return np.nan
    return float(weightedtau(s, a).statistic)


def _pairwise_cv(data: dict, columns, transform: str, grid, min_gap: float) -> Combination:
    best, best_tau = grid[0], -np.inf
    if len(data) >= 2:
        for l2 in grid:
            taus = []
            for d, (x, a) in data.items():
                inner = _fit_pairs({k: v for k, v in data.items() if k != d}, columns, transform, l2, min_gap)
                taus.append(_tau(x, a, inner))
            mean = float(np.nanmean(taus)) if np.isfinite(taus).any() else -np.inf
            if mean > best_tau + 1e-12:
                best, best_tau = l2, mean
    comb = _fit_pairs(data, columns, transform, best, min_gap)
    if not comb.learned:
        return comb
    return Combination(comb.weights, comb.transform, comb.fitted_on,
                       note=f"{comb.note}; L2 {best:g} chosen by inner leave-one-dataset-out", method=comb.method,
                       l2=comb.l2)


def fit_pairwise_cv(scores: pd.DataFrame, history: pd.DataFrame, columns, *, exclude: str | None = None,
                    transform: str = "rank", grid=L2_GRID, min_gap: float = 0.0) -> Combination:
    """:func:`fit_pairwise` with its L2 strength chosen by an inner leave-one-dataset-out over the
    history without ``exclude``: for each strength of ``grid``, fit on all but one training dataset,
    weighted tau on that one, mean over them; the best strength (ties: the stronger) is refitted on
    every training dataset. With fewer than 2 training datasets, ``grid[0]``."""
    columns = list(columns)
    data = standardised_by_dataset(scores, history, columns, transform, exclude)
    return _pairwise_cv(data, columns, transform, grid, min_gap)


def refit_top_shares(scores: pd.DataFrame, history: pd.DataFrame, comb: Combination, target: pd.DataFrame, *,
                     exclude: str | None = None, n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """How often each row of ``target`` (one dataset: index = models, columns = the inputs) comes
    first when the pairwise combination ``comb`` is refitted (same transform and L2) on a bootstrap
    resample of the history's datasets without ``exclude`` (datasets drawn with replacement; a
    dataset drawn twice counts twice): the uncertainty of the learned weights (Efron & Tibshirani
    1993, ch. 6, resampling the independent units). Exact ties share a win; shares sum to 1.
    ``{}`` for a combination that is not a learned pairwise one."""
    from zoorank.metrics.evaluation import first_place_shares

    if not comb.learned or comb.l2 is None:          # only the pairwise fits carry an L2
        return {}
    columns = list(comb.weights)
    data = standardised_by_dataset(scores, history, columns, comb.transform, exclude)
    parts = [p for p in (_pairs(x, a, 0.0) for _, (x, a) in sorted(data.items())) if len(p[1])]
    z = np.column_stack([standardise(target[c], comb.transform).fillna(0.0).to_numpy(float) if c in target
                         else np.zeros(len(target)) for c in columns])
    rng = np.random.default_rng(seed)
    refits = []
    for _ in range(int(n_boot)):
        pick = rng.integers(0, len(parts), size=len(parts))
        dx = np.concatenate([parts[i][0] for i in pick])
        g = np.concatenate([parts[i][1] for i in pick])
        refits.append(z @ _newton_logistic(dx, g / g.sum(), comb.l2))
    wins = first_place_shares(np.column_stack(refits))
    return {str(m): float(w / n_boot) for m, w in zip(target.index, wins)}


def loo_top1_regret(scores: pd.DataFrame, history: pd.DataFrame, columns, method: str = "pairwise", *,
                    exclude: str | None = None) -> tuple[float, int]:
    """Expected top-1 regret of ``method`` estimated on the history: for each history dataset
    (never ``exclude``), the combination learned without it picks its top-1, and the regret is that
    dataset's best accuracy minus the pick's. Returns (mean regret, number of datasets); NaN when no
    dataset can be scored by a learned combination. ``scores``: training inputs (wide)."""
    columns = list(columns)
    regrets = []
    if method in ("pairwise", "pairwise_z"):
        transform = "zscore" if method == "pairwise_z" else "rank"
        data = standardised_by_dataset(scores, history, columns, transform, exclude)
        for d, (x, a) in data.items():
            comb = _pairwise_cv({k: v for k, v in data.items() if k != d}, columns, transform, L2_GRID, 0.0)
            if comb.learned and len(a) >= 2:
                s = x @ np.array([comb.weights[c] for c in columns])
                regrets.append(float(a.max() - a[int(np.argmax(s))]))
    else:
        merged = scores.merge(history[["dataset", "model", "accuracy"]], on=["dataset", "model"])
        for d, part in merged.groupby("dataset"):
            if d == exclude:
                continue
            comb = fit_combination(method, scores, history, columns, exclude=d)
            a = part["accuracy"].to_numpy(float)
            if (comb.learned or method in ("zmean", "rankmean")) and len(a) >= 2:
                s = comb.score(part[columns]).to_numpy(float)
                regrets.append(float(a.max() - a[int(np.argmax(s))]))
    return (float(np.mean(regrets)) if regrets else float("nan")), len(regrets)


def fit_combination(method: str, scores: pd.DataFrame, history: pd.DataFrame | None, columns, *,
                    exclude: str | None = None, l2: float | None = None) -> Combination:
    """The combination ``method`` (:data:`METHODS`) fitted on the history without ``exclude``;
    the pairwise methods choose their L2 strength by :func:`fit_pairwise_cv` unless ``l2`` is given."""
    if method not in METHODS:
        raise ValueError(f"combination method must be one of {METHODS}, got {method!r}")
    columns = list(columns)
    if method == "zmean":
        return default_combination(columns, "zscore")
    if method == "rankmean" or history is None or history.empty or scores is None or scores.empty:
        return default_combination(columns, "rank")
    if method == "stacking":
        return fit_stacking(scores, history, columns, exclude=exclude)
    transform = "zscore" if method == "pairwise_z" else "rank"
    if l2 is None:
        return fit_pairwise_cv(scores, history, columns, exclude=exclude, transform=transform)
    return fit_pairwise(scores, history, columns, exclude=exclude, transform=transform, l2=l2)


def combined_scores(table: pd.DataFrame, dataset: str, history: pd.DataFrame | None,
                    history_scores: pd.DataFrame | None, columns, *, transform: str = "rank",
                    l2: float = 1.0) -> tuple[pd.Series, Combination]:
    """The ``combined`` column for ``table`` (rows = models of ``dataset``, columns = inputs),
    learned from the history without ``dataset`` itself (no leakage)."""
    columns = [c for c in columns if c in table]
    if history is None or history_scores is None or history.empty:
        comb = default_combination(columns, transform)
    else:
        comb = fit_pairwise(history_scores, history, columns, exclude=dataset, transform=transform, l2=l2)
    return comb.score(table), comb


def dedupe_history(history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (dataset, model): the newest (column ``time``, else the last row) wins.
    Returns (deduplicated, the rows that were overridden)."""
    h = history.copy()
    h["_order"] = np.arange(len(h))
    sort = ["time", "_order"] if "time" in h else ["_order"]
    h = h.sort_values(sort)
    dup = h.duplicated(["dataset", "model"], keep="last")
    return h[~dup].drop(columns="_order"), h[dup].drop(columns="_order")


#: the priors registered beside the metrics: functions of the zoo's history and model cards
PRIORS = ("history_mean", "source_accuracy", "size")


def prior_table(models, dataset: str, history: pd.DataFrame | None, *,
                source_accuracy=None, parameters=None) -> pd.DataFrame:
    """One row per model, one column per prior (higher = predicted better; NaN = unknown):

    - ``history_mean``: :func:`history_mean` on the history without ``dataset``;
    - ``source_accuracy``: the model card's source-task top-1 (comparable only between models
      of one source task; the card names it);
    - ``size``: log10 of the parameter count (bigger backbones fine-tune better on the public
      tables, Singh et al. 2025)."""
    models = list(models)
    out = pd.DataFrame(index=pd.Index(models, name="model"))
    out["history_mean"] = (history_mean(history, models, dataset) if history is not None and not history.empty
                           else np.nan)
    acc = source_accuracy or {}
    out["source_accuracy"] = [acc.get(m) if acc.get(m) is not None else np.nan for m in models]
    size = parameters or {}
    out["size"] = [np.log10(size[m]) if size.get(m) else np.nan for m in models]
    return out.astype(float)


def input_table(metric_scores: pd.DataFrame | None, dataset: str, models, history: pd.DataFrame | None, *,
                metrics=(), source_accuracy=None, parameters=None) -> pd.DataFrame:
    """The inputs of one dataset: one row per model, the ``metrics`` columns of ``metric_scores``
    (long form: ``dataset, model, metric, score``; NaN where absent) and the priors of
    :func:`prior_table` from ``history`` without ``dataset``."""
    models = list(models)
    out = pd.DataFrame(index=pd.Index(models, name="model"))
    if metric_scores is not None and len(metric_scores):
        part = metric_scores[metric_scores["dataset"] == dataset]
        wide = part.pivot_table(index="model", columns="metric", values="score", aggfunc="last")
        for m in metrics:
            out[m] = wide[m].reindex(models).astype(float) if m in wide else np.nan
    else:
        for m in metrics:
            out[m] = np.nan
    priors = prior_table(models, dataset, history, source_accuracy=source_accuracy, parameters=parameters)
    return pd.concat([out, priors], axis=1)


def training_inputs(metric_scores: pd.DataFrame | None, history: pd.DataFrame, *, exclude: str | None,
                    metrics=(), source_accuracy=None, parameters=None) -> pd.DataFrame:
    """Inputs of every history dataset except ``exclude`` (columns ``dataset``, ``model``, inputs),
    each with ``history_mean`` computed from the history without ``exclude`` and without the row's
    own dataset: the ranked dataset's accuracies reach neither the targets nor the features. When
    ``metrics`` are asked for, a dataset without any metric score is left out of the training rows
    (it still counts in ``history_mean``): fitted on, it would weigh the priors against nothing."""
    h = history if exclude is None else history[history["dataset"] != exclude]
    frames = []
    for d, part in h.groupby("dataset", sort=True):
        t = input_table(metric_scores, d, part["model"].tolist(), h, metrics=metrics,
                        source_accuracy=source_accuracy, parameters=parameters)
        if list(metrics) and not t[list(metrics)].notna().any().any():
            continue   # no metric scores for this dataset: it would teach the priors' weights alone
        frames.append(t.reset_index().assign(dataset=d))
    if not frames:
        return pd.DataFrame(columns=["dataset", "model", *metrics, *PRIORS])
    return pd.concat(frames, ignore_index=True)


def rank_with_history(table: pd.DataFrame, dataset: str, history: pd.DataFrame | None,
                      metric_scores: pd.DataFrame | None, columns, *, method: str = DEFAULT_METHOD,
                      source_accuracy=None, parameters=None, l2: float | None = None
                      ) -> tuple[pd.Series, Combination]:
    """``combined`` for ``table`` (one dataset: rows = models, columns include ``columns``, priors
    already added by :func:`input_table`), learned by ``method`` from the history without
    ``dataset``. Columns absent from ``table`` are dropped."""
    columns = [c for c in columns if c in table]
    metrics = [c for c in columns if c not in PRIORS]
    if history is None or history.empty:
        comb = default_combination(columns, "zscore" if method == "zmean" else "rank")
        return comb.score(table), comb
    train = training_inputs(metric_scores, history, exclude=dataset, metrics=metrics,
                            source_accuracy=source_accuracy, parameters=parameters)
    comb = fit_combination(method, train, history, columns, exclude=dataset, l2=l2)
    return comb.score(table), comb
