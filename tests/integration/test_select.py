"""``zoorank select --budget N`` (issue 15): successive halving with the ground-truth recipe on the
digit CNNs (real fine-tuning, a real local store; a few optimizer steps keep it fast)."""
from __future__ import annotations

import dataclasses
import math

import pytest

from zoorank.orchestration.budgeted_selection import halving_plan, successive_halving


@pytest.mark.parametrize("n, models, expected", [
    (1, 12, [(1, 80)]),                          # one full trial of the top-1
    (2, 12, [(2, 40), (1, 80)]),
    (3, 12, [(4, 20), (2, 40), (1, 80)]),        # every round costs 80 steps: 3 x 80 in all
    (9, 3, [(2, 40), (1, 80)]),                  # at most the zoo: 2 of 3 models (a power of two)
])
def test_halving_plan_by_hand(n, models, expected):
    plan = halving_plan(n, models, 80)
    assert plan == expected
    assert sum(k * s for k, s in plan) <= n * 80


def test_halving_plan_bad_budget():
    with pytest.raises(ValueError, match="--budget must be a positive whole number"):
        halving_plan(0, 4, 80)
    with pytest.raises(ValueError, match="at least one model"):
        halving_plan(2, 0, 80)


@pytest.mark.slow   # ~20 s quiet, 76 s measured on the loaded 2-core machine (probe + 3 trials + reload)
def test_select_on_digit_cnns_records_ground_truth_the_history_uses(settings, monkeypatch):
    from zoorank.compute import finetune
    from zoorank.pipeline.history import load_history
    from zoorank.storage.arrays import ArrayStore

    monkeypatch.setenv("ZOORANK_HISTORY", "none")
    budget = dataclasses.replace(finetune.Budget.cpu(), steps=6, eval_every=3, train_per_class=8,
                                 val_per_class=6, test_per_class=6)
    specs = ["cnn_usps", "cnn_digitrec", "cnn_mnist"]             # the ranking's order, best first
    res = successive_halving(settings, specs, "digits", 2, budget=budget)
    assert res.candidates == ["cnn_usps", "cnn_digitrec"] and [r["steps"] for r in res.rounds] == [3, 6]
    first = res.rounds[0]["trials"]
    vals = {m: t["val_top1"] for m, t in first.items()}
    best = max(vals, key=lambda m: (vals[m], -specs.index(m)))
    assert res.rounds[0]["kept"] == [best] and res.winner == best
    assert 0.0 <= res.test_top1 <= 1.0 and math.isfinite(res.val_top1)
    assert res.steps_spent == 2 * 3 + 6 and res.budget_steps == 12

    store = ArrayStore(settings.store)
    assert len(store.list_records("gt_trial")) == 3 and len(store.list_records("gt_select")) == 1
    history = load_history(store)
    rows = history.accuracy
    assert rows[["dataset", "model"]].values.tolist() == [["digits", best]]      # the full trial only
    assert rows["accuracy"].item() == pytest.approx(res.test_top1)

    again = successive_halving(settings, specs, "digits", 2, budget=budget)     # records reused, nothing trained
    assert again.winner == res.winner and again.steps_spent == 0
    assert all(t["cached"] for r in again.rounds for t in r["trials"].values())
