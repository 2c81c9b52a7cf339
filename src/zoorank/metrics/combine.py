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
- Without history: :data:`DEFAULT_WEIGHTS`, equal weights on the standardised scores of the
  inputs present (rank averaging, a Borda count), documented in docs/combined.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.optimize
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
    """``scores`` (columns ``dataset``, ``model`` and ``columns``) standardised per dataset."""
    out = scores[["dataset", "model"]].copy()
    for c in columns:
        out[c] = scores.groupby("dataset", group_keys=False)[c].apply(lambda s: standardise(s, transform))
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
    return Combination({c: 1.0 / len(cols) for c in cols}, transform,
                       note="no usable history: equal-weight rank average of the inputs (default)")


def _pairs(z: pd.DataFrame, acc: pd.Series, columns, min_gap: float):
    """Feature differences and weights of every ordered pair (better, worse) of one dataset."""
    x = z[columns].fillna(0.0).to_numpy(float)
    a = acc.to_numpy(float)
    i, j = np.nonzero(a[:, None] - a[None, :] > min_gap)
    return x[i] - x[j], a[i] - a[j]


def fit_pairwise(scores: pd.DataFrame, history: pd.DataFrame, columns, *, exclude: str | None = None,
                 transform: str = "rank", l2: float = 1.0, min_gap: float = 0.0) -> Combination:
    """RankNet-style linear pairwise logistic ranker on the history's datasets (never on
    ``exclude``, the dataset being ranked): minimise
    ``sum_d sum_{acc_i > acc_j} g_ij log(1 + exp(-w . (z_i - z_j))) / sum g + l2 ||w||^2 / 2``
    with ``g_ij`` the accuracy gap. Falls back to :func:`default_combination` (and says why)
    when no dataset other than ``exclude`` has at least two models with different accuracy."""
    columns = list(columns)
    merged = scores.merge(history[["dataset", "model", "accuracy"]], on=["dataset", "model"])
    if exclude is not None:
        merged = merged[merged["dataset"] != exclude]
    z = standardise_frame(merged, columns, transform)
    diffs, gaps, used = [], [], []
    for d, idx in z.groupby("dataset").groups.items():
        dx, g = _pairs(z.loc[idx], merged.loc[idx, "accuracy"], columns, min_gap)
        if len(g):
            diffs.append(dx)
            gaps.append(g)
            used.append(str(d))
    if not used:
        return default_combination(columns, transform)
    dx, g = np.concatenate(diffs), np.concatenate(gaps)
    g = g / g.sum()

    def loss(w):
        m = dx @ w
        val = float(np.sum(g * np.logaddexp(0.0, -m)) + 0.5 * l2 * w @ w)
        grad = -(dx.T @ (g * scipy.special.expit(-m))) + l2 * w
        return val, grad

    res = scipy.optimize.minimize(loss, np.zeros(len(columns)), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-10, "ftol": 0.0, "maxiter": 2000})
    return Combination(dict(zip(columns, map(float, res.x))), transform, tuple(sorted(used)),
                       note=f"learned from {len(used)} history dataset(s): {', '.join(sorted(used))}")


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
