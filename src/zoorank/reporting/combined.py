"""The ``combined`` column of a ranking table, what it learned from, and how sure it is (issue 15).

:func:`add_combined` puts, per ranked dataset, the priors (``history_mean``, ``source_accuracy``,
``size``) and the ``combined`` score (zoorank.metrics.combine.rank_with_history, learned from the
history without the ranked dataset) into the table, and returns per dataset:

- what the combination is (method, datasets fitted on, weights) and notes for the output: models
  new to the history (their history term is the dataset's middle, so their place comes from their
  metric scores and model cards), a history sharing no model with the zoo, a history of one
  dataset, ground-truth rows overridden by newer ones;
- its tie set (:func:`combined_tie_set`): the models first in >= 10% of refits of the combination
  on bootstrap resamples of the history datasets (the learned weights' uncertainty);
- the expected top-1 regret: the mean, over the history's datasets other than the ranked one, of
  the accuracy lost by fine-tuning the combination's top-1 of that dataset instead of its best
  model, each dataset's combination learned without it (leave-one-out).

Without a usable history no ``combined`` column is added: LEAD stays the recommended order, and the
note says so (the documented default, an equal-weight rank average, would only restate the metrics).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from zoorank.metrics import combine
from zoorank.zoo.cards import BUILTIN_CARDS

__all__ = ["add_combined", "cards_from_specs", "expected_top1_regret", "log_combined", "COMBINED_ARTIFACT"]

COMBINED_ARTIFACT = "combined.json"
MAX_LISTED = 6


def _cards(models, source_accuracy=None, parameters=None) -> tuple[dict, dict]:
    """Source accuracy and size by model id: the given ones over the built-in model cards."""
    acc = {m: BUILTIN_CARDS[m].source_accuracy for m in models if m in BUILTIN_CARDS}
    size = {m: BUILTIN_CARDS[m].parameters for m in models if m in BUILTIN_CARDS}
    acc.update(source_accuracy or {})
    size.update(parameters or {})
    return ({m: v for m, v in acc.items() if v is not None}, {m: v for m, v in size.items() if v})


def cards_from_specs(specs) -> tuple[dict, dict]:
    """(source accuracy, parameters) by model id from zoo entries: a zoo file's declared fields over
    the built-in cards (zoorank.zoo.cards.model_card); a bare id reads the built-in card."""
    from zoorank.zoo.cards import ModelCard, model_card

    acc, size = {}, {}
    for spec in specs or []:
        mid = spec if isinstance(spec, str) else spec.id
        card = BUILTIN_CARDS.get(spec, ModelCard()) if isinstance(spec, str) else model_card(spec)
        if card.source_accuracy is not None:
            acc[mid] = card.source_accuracy
        if card.parameters:
            size[mid] = card.parameters
    return acc, size


def _listed(names) -> str:
    names = list(names)
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def expected_top1_regret(train: pd.DataFrame, history: pd.DataFrame, columns, method: str) -> tuple[float, int]:
    """Mean leave-one-out top-1 regret (accuracy, a fraction) of ``method`` over the datasets of
    ``train`` (:func:`combine.training_inputs`), and how many (:func:`combine.loo_top1_regret`)."""
    return combine.loo_top1_regret(train, history, columns, method)


#: refits of the combination per ranked dataset for its tie set (about 1 ms each)
TIE_REFITS = 200


def combined_tie_set(train: pd.DataFrame, history: pd.DataFrame, comb, target: pd.DataFrame, dataset: str):
    """The tie set of ``combined`` (a :class:`zoorank.reporting.ties.TieSet`, score ``combined``): the
    models that come first in >= 10% of :data:`TIE_REFITS` refits on bootstrap resamples of the
    history datasets (:func:`combine.refit_top_shares`); ``None`` for a combination that is not a
    learned pairwise one."""
    from zoorank.reporting.ties import TieSet

    share = combine.refit_top_shares(train, history, comb, target, exclude=dataset, n_boot=TIE_REFITS)
    if not share:
        return None
    return TieSet.from_shares(share, n_boot=TIE_REFITS, n_units=len(comb.fitted_on), score="combined",
                              unit="history datasets", resamples="refits of the combination on resamples")


def add_combined(table: pd.DataFrame, metrics, history, *, source_accuracy=None, parameters=None,
                 method: str = combine.DEFAULT_METHOD) -> tuple[pd.DataFrame, dict, dict]:
    """``(table with priors and combined, {dataset: info}, {dataset: [note]})`` (see module doc).
    ``history``: a :class:`zoorank.pipeline.history.History`."""
    metrics = [m for m in metrics if m in table]
    if table.empty:
        return table, {}, {}
    models_all = sorted(set(table["model"]))
    acc_cards, size_cards = _cards(models_all, source_accuracy, parameters)
    out, info, notes = [], {}, {}
    hist = history.accuracy if history is not None else None
    for dataset, part in table.groupby("dataset", sort=False):
        part = part.copy()
        models = part["model"].tolist()
        inputs = part.set_index("model")[metrics].astype(float)
        priors = combine.prior_table(models, dataset, hist, source_accuracy=acc_cards, parameters=size_cards)
        for c in combine.PRIORS:
            part[c] = priors[c].to_numpy(float)
        others = [] if hist is None else sorted(set(hist["dataset"]) - {dataset})
        lines = []
        if not others:
            why = "no ground-truth history" if hist is None or hist.empty else \
                f"the history has ground truth for {dataset} only, which is never used to rank {dataset}"
            lines.append(f"{why}: the recommended order is LEAD's; `combined` (learned from past fine-tuning) "
                         "appears once ground truth for other datasets exists (docs/combined.md)")
            info[dataset] = {"method": "none", "fitted_on": [], "weights": {}, "note": lines[0]}
            notes[dataset] = lines
            out.append(part)
            continue
        target = pd.concat([inputs, priors], axis=1)
        columns = [*metrics, *combine.PRIORS]
        train = combine.training_inputs(history.scores, hist, exclude=dataset, metrics=metrics,
                                        source_accuracy=acc_cards, parameters=size_cards)
        comb = combine.fit_combination(method, train, hist, columns, exclude=dataset)
        part["combined"] = comb.score(target[columns]).to_numpy(float)
        tie = combined_tie_set(train, hist, comb, target[columns], dataset)
        regret, n_regret = expected_top1_regret(train, hist, columns, method) if comb.learned else (float("nan"), 0)
        seen = set(hist.loc[hist["dataset"] != dataset, "model"])
        new = [m for m in models if m not in seen]
        if len(new) == len(models):
            lines.append(f"the history ({len(others)} dataset(s)) shares no model with this zoo: history_mean is "
                         "unknown for every model, so `combined` is the metric and model-card weights learned on "
                         "the history's models")
        elif new:
            lines.append(f"new to the history: {_listed(new)}: no ground truth for them on other datasets, so "
                         "their `combined` score rests on their metric scores and model cards (history_mean "
                         "enters as the dataset's middle)")
        unscored = [m for m in metrics if m not in train or not train[m].notna().any()]
        if unscored and comb.learned:
            lines.append(f"no history dataset has scores of {_listed(unscored)}: their weight cannot be learned "
                         "(0)")
        if comb.learned:
            top = sorted(comb.weights.items(), key=lambda kv: -abs(kv[1]))[:4]
            lines.append(f"combined ({comb.method}): {comb.note}; largest weights "
                         + ", ".join(f"{k} {v:+.2f}" for k, v in top))
            if len(comb.fitted_on) == 1:
                lines.append("the combination is learned from one dataset only: history_mean's weight cannot be "
                             "learned from it (it needs a second dataset) and the weights are uncertain")
        else:
            lines.append(f"combined: {comb.note} (no other history dataset has metric scores for two or more "
                         "models with different accuracy)")
        if np.isfinite(regret):
            lines.append(f"expected top-1 regret of `combined`: {100 * regret:.1f} accuracy points (mean over "
                         f"{n_regret} history dataset(s), each ranked by a combination learned without it)")
        if history is not None and len(history.overridden):
            o = history.overridden
            pairs = [f"{d}/{m}" for d, m in zip(o["dataset"], o["model"])]
            lines.append(f"ground truth: {len(o)} duplicate or contradictory row(s) overridden by newer ones "
                         f"({_listed(pairs)})")
        info[dataset] = {"method": comb.method, "fitted_on": list(comb.fitted_on), "weights": comb.weights,
                         "note": comb.note, "new_to_history": new,
                         "expected_top1_regret": None if not np.isfinite(regret) else regret,
                         "regret_datasets": n_regret, "history_sources": list(history.sources),
                         "tie": tie.as_dict() if tie is not None else None}
        notes[dataset] = lines
        out.append(part)
    return pd.concat(out, ignore_index=True), info, notes


def log_combined(settings, run_id: str, info: dict) -> None:
    """``combined.json`` and ``<dataset>.expected_top1_regret`` on the ranking's MLflow run."""
    from zoorank.reporting.tracking_report import _safe
    from zoorank.storage.tracking import Tracker

    tracker = Tracker.from_settings(settings)
    tracker.client.log_dict(run_id, info, COMBINED_ARTIFACT)
    metrics = {f"{_safe(d)}.expected_top1_regret": float(v["expected_top1_regret"])
               for d, v in info.items() if v.get("expected_top1_regret") is not None}
    if metrics:
        tracker.log_metrics(run_id, metrics)
