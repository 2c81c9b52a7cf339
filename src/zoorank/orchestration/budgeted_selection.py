"""Budgeted selection, ``zoorank select --budget N`` (issue 15): fine-tune the top of the combined
ranking briefly and return the model that is measured best.

Successive halving (Jamieson & Talwalkar, AISTATS 2016) over the ranking's top ``k`` models, with the
ground-truth recipe (zoorank.compute.finetune, the CPU preset ft-v2 of docs/ground_truth.md) and its
trial records (zoorank.orchestration.flows.ground_truth.finetune_trial, run without Prefect):

- ``N`` is the compute in full-recipe trials (``N x budget.steps`` optimizer steps in all).
- ``k`` is the largest power of two with ``log2 k + 1 <= N`` (and at most the number of models):
  round ``r = 0..R`` (``R = log2 k``) fine-tunes the ``k / 2^r`` survivors for ``steps / 2^(R - r)``
  steps each, so every round costs ``steps`` and the last round is one full-recipe trial.
- After each round the better half by validation top-1 survives (ties: the better ranked).
- Every trial is one seed at the recipe's middle learning rate (``SELECT_LR``); its record is the
  ground-truth flow's own (same key for the same inputs: a trial done before is reused, never
  retrained). The last round's trial is a full-recipe trial: ground truth that the history
  (zoorank.pipeline.history) uses from then on; shorter trials are kept but not used as ground truth.

The winner's measured accuracy is its last trial's test top-1 on the recipe's test split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

__all__ = ["SelectionResult", "halving_plan", "successive_halving", "SELECT_LR"]

#: the learning rate of every selection trial: the middle of the CPU recipe's grid (1e-3, 3e-3, 1e-2)
SELECT_LR = 3e-3


@dataclass
class SelectionResult:
    winner: str
    val_top1: float
    test_top1: float
    rounds: list[dict] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    steps_spent: int = 0
    budget_steps: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"winner": self.winner, "val_top1": self.val_top1, "test_top1": self.test_top1,
                "rounds": self.rounds, "candidates": self.candidates, "steps_spent": self.steps_spent,
                "budget_steps": self.budget_steps, "notes": self.notes}


def halving_plan(n_budget: int, n_models: int, steps: int) -> list[tuple[int, int]]:
    """``[(models in round r, steps per trial in round r), ...]`` for a budget of ``n_budget``
    full-recipe trials of ``steps`` steps (see the module doc)."""
    if not isinstance(n_budget, int) or n_budget < 1:
        raise ValueError(f"--budget must be a positive whole number of full fine-tuning trials, got {n_budget!r}")
    if n_models < 1:
        raise ValueError("select needs at least one model to fine-tune")
    r = 0
    while 2 ** (r + 1) <= n_models and r + 2 <= n_budget:
        r += 1
    k = 2 ** r
    plan = [(max(1, k // 2 ** i), max(1, steps // 2 ** (r - i))) for i in range(r + 1)]
    return plan


def _trial(settings, spec, dataset: str, budget, steps: int, split_seed: int, device: str, data_root):
    from zoorank.compute import finetune
    from zoorank.orchestration.flows.ground_truth import finetune_trial

    b = budget if steps == budget.steps else replace(budget, steps=steps,
                                                      eval_every=max(1, steps // 2) if budget.eval_every else 0)
    params = finetune.TrialParams(SELECT_LR, 0.0, 0)
    return finetune_trial.fn(settings, spec, dataset, params, b, split_seed, device, data_root, None)


def _record_selection(settings, dataset: str, rounds: list[dict], budget) -> None:
    """A ``gt_select`` record naming this selection's trials shorter than the recipe: they stay in
    the store but zoorank.pipeline.history does not take them for ground truth."""
    from zoorank.pipeline.history import SELECT_STAGE
    from zoorank.storage.arrays import ArrayStore
    from zoorank.storage.keys import content_key

    partial = sorted(t["key"] for r in rounds if r["steps"] < budget.steps for t in r["trials"].values() if t["key"])
    record = {"dataset": dataset, "rounds": rounds, "partial_keys": partial, "budget": budget.as_dict()}
    ArrayStore(settings.store).put_record(content_key(SELECT_STAGE, stage_version=1, record=record), record)


def successive_halving(settings, specs: list, dataset: str, n_budget: int, *, budget=None, split_seed: int = 0,
                       device: str = "cpu", data_root: str | None = None, progress=None) -> SelectionResult:
    """Successive halving over ``specs`` (best predicted first: the combined ranking's order)."""
    from zoorank.compute import finetune
    from zoorank.pipeline.sources import spec_id

    budget = budget or finetune.Budget.cpu()
    plan = halving_plan(n_budget, len(specs), budget.steps)
    alive = list(specs[:plan[0][0]])
    order = {spec_id(s): i for i, s in enumerate(specs)}
    rounds, spent, last = [], 0, {}
    for r, (n, steps) in enumerate(plan):
        alive = alive[:n]
        results = {}
        for spec in alive:
            res = _trial(settings, spec, dataset, budget, steps, split_seed, device, data_root)
            spent += steps if not res.get("cache_hit") else 0
            results[spec_id(spec)] = res
            if progress:
                progress(f"round {r + 1}/{len(plan)}: {spec_id(spec)} {steps} steps, val top-1 "
                         f"{res.get('val_top1', math.nan):.3f}" + (" (cached)" if res.get("cache_hit") else ""))

        def key(spec):
            res = results[spec_id(spec)]
            val = res.get("val_top1")
            ok = not res.get("diverged") and val is not None and math.isfinite(val)
            return (0 if ok else 1, -(val if ok else 0.0), order[spec_id(spec)])

        alive = sorted(alive, key=key)
        rounds.append({"round": r + 1, "steps": steps,
                       "trials": {m: {"val_top1": v.get("val_top1"), "test_top1": v.get("test_top1"),
                                      "diverged": bool(v.get("diverged")), "cached": bool(v.get("cache_hit")),
                                      "key": v.get("key")} for m, v in results.items()},
                       "kept": [spec_id(s) for s in alive[:plan[r + 1][0]]] if r + 1 < len(plan) else
                       [spec_id(alive[0])]})
        last = results
    winner = spec_id(alive[0])
    _record_selection(settings, dataset, rounds, budget)
    notes = []
    if last[winner].get("diverged"):
        notes.append(f"every final trial diverged; {winner} is the best ranked, unmeasured")
    return SelectionResult(winner, float(last[winner].get("val_top1", math.nan)),
                           float(last[winner].get("test_top1", math.nan)), rounds,
                           [spec_id(s) for s in specs[:plan[0][0]]], spent, n_budget * budget.steps, notes)
