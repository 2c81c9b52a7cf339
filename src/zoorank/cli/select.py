"""``zoorank select --budget N``: rank the zoo, then fine-tune the top of the recommended order by
successive halving (zoorank.orchestration.budgeted_selection) and print the measured winner.

    zoorank select --zoo results/ground_truth/zoo_80px.yaml --dataset emoji --budget 3
"""
from __future__ import annotations

import json
import sys


def add_select_parser(sub, location_flags, per_class_type) -> None:
    s = sub.add_parser("select", help="fine-tune the recommended ranking's top models briefly (successive "
                                      "halving) and return the measured best; the trials become ground truth")
    s.add_argument("--zoo", default="default")
    s.add_argument("--dataset", required=True, help="one dataset id")
    s.add_argument("--budget", type=int, required=True,
                   help="compute in full fine-tuning trials of the CPU recipe (N x its steps); N=3 tries 4 models")
    s.add_argument("--per-class", type=per_class_type, default=100, help="images per class for the ranking")
    s.add_argument("--metrics", help="comma-separated metric names for the ranking (default: all)")
    s.add_argument("--steps", type=int, help="steps of a full trial (default: the CPU recipe's for the dataset, finetune.cpu_budget_for)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--format", choices=["table", "json"], default="table")
    location_flags(s)


def cmd_select(args, settings) -> int:
    import dataclasses

    from zoorank.api import rank
    from zoorank.compute import finetune
    from zoorank.orchestration.budgeted_selection import halving_plan, successive_halving
    from zoorank.pipeline.preflight import resolve_specs
    from zoorank.pipeline.sources import spec_id
    from zoorank.reporting.summary import recommended_column

    budget = finetune.cpu_budget_for(args.dataset)
    if args.steps:
        budget = dataclasses.replace(budget, steps=args.steps, eval_every=max(1, args.steps // 2))
    specs = resolve_specs(args.zoo)
    halving_plan(args.budget, len(specs), budget.steps)          # a bad --budget fails before any work
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    res = rank(args.zoo, args.dataset, per_class=args.per_class, metrics=metrics, settings=settings,
               device=args.device, details=True)
    table = res.table
    score = recommended_column(table)
    order = table.sort_values(score, ascending=False, na_position="last", kind="stable")["model"].tolist()
    by_id = {spec_id(s): s for s in specs}
    ordered = [by_id[m] for m in order if m in by_id]
    print(f"zoorank select: recommended order by {score}: {', '.join(order)}", file=sys.stderr)
    out = successive_halving(settings, ordered, args.dataset, args.budget, budget=budget, device=args.device,
                             progress=lambda line: print(f"  {line}", file=sys.stderr))
    doc = out.as_dict() | {"dataset": args.dataset, "ranked_by": score, "ranking_run": res.run_id}
    if args.format == "json":
        print(json.dumps(doc, indent=2))
        return 0
    print(f"== {args.dataset}: budget {args.budget} full trial(s) ({out.budget_steps} steps), "
          f"{len(out.candidates)} candidate(s) by {score} ==")
    for r in out.rounds:
        trials = ", ".join(f"{m} {t['val_top1']:.3f}" + (" (diverged)" if t["diverged"] else "")
                           for m, t in r["trials"].items())
        print(f"round {r['round']} ({r['steps']} steps each): val top-1 {trials}; kept {', '.join(r['kept'])}")
    print(f"winner: {out.winner}: validation top-1 {out.val_top1:.3f}, test top-1 {out.test_top1:.3f} "
          f"(its full-recipe trial; {out.steps_spent} steps trained now, the rest from earlier records)")
    for n in out.notes:
        print(f"note: {n}")
    print(f"the trials are ground-truth records in {settings.store}: the next ranking's history uses the "
          "full-recipe ones")
    return 0
