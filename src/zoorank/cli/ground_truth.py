"""``zoorank ground-truth``: arguments and command (fine-tune, import / export trial records, table).

    zoorank ground-truth --preset cpu --zoo results/ground_truth/zoo_80px.yaml --dataset digits ... \\
        --threads 1 --workers 2 --csv results/ground_truth.csv --export results/ground_truth/trials.jsonl
    zoorank ground-truth --export trials.jsonl                 # records of the store, nothing trained
    zoorank ground-truth --import trials.jsonl --preset cpu --zoo ... --dataset ... --csv gt.csv

Order: ``--import`` first, then the flow (unless ``--table-only`` or no ``--dataset``), then
``--export``, then the CSV, written from the store's records (:mod:`zoorank.pipeline.ground_truth_records`).
A preset is the base budget; every knob given explicitly overrides its field. The cpu preset trains the
datasets of ``finetune.CPU_STEPS_FOR`` longer (unless ``--steps`` is given) and caps the test split of
``finetune.CPU_TEST_PER_CLASS_FOR`` higher (unless ``--test-per-class`` is given); ``--steps-for D=N``
sets one dataset's steps. Datasets that share a budget run in one flow; the table holds every group.
"""
from __future__ import annotations

import dataclasses
import shlex
import sys

KNOBS = {  # flag dest -> Budget field
    "steps": "steps", "batch_size": "batch_size", "train_per_class": "train_per_class",
    "val_per_class": "val_per_class", "test_per_class": "test_per_class", "max_input_side": "max_input_side",
    "eval_every": "eval_every", "wd_mode": "wd_mode", "bn": "bn", "head_init": "head_init",
    "warmup_frac": "warmup_frac", "clip_norm": "clip_norm",
}


def add_ground_truth_parser(sub, location_flags) -> None:
    g = sub.add_parser("ground-truth", help="fine-tune every (model, dataset) pair (the ground truth the "
                                            "benchmark compares rankings to); import / export trial records")
    g.add_argument("--zoo", default="default")
    g.add_argument("--dataset", action="append", help="dataset id (repeat for several); none: only "
                                                      "--import / --export / --csv")
    g.add_argument("--preset", choices=["cpu", "full"],
                   help="cpu: the CPU protocol ft-v2 (LP-FT, lr {1e-3,3e-3,1e-2}, seeds 0,1,2; "
                        "docs/ground_truth.md); full: the literature's (GPU)")
    g.add_argument("--lrs", help="learning rates (default: the preset's; no preset: 0.1,0.01,0.001,0.0001)")
    g.add_argument("--lrs-up", help="lrs tried at the first seed, in order, while the largest lr tried wins on "
                                    "val (default: the preset's: cpu 0.03, full none; 'none': no extension)")
    g.add_argument("--wds", help="weight decays (default: the preset's; no preset: 0,1e-6,1e-5,1e-4,1e-3)")
    g.add_argument("--seeds", help="comma-separated seeds (default: the preset's; no preset: 0)")
    g.add_argument("--max-seeds", help="the most seeds at the chosen lr: more than --seeds run while fewer "
                                       "survive or their spread keeps the SE above 2 points (default: the "
                                       "preset's: cpu 15, full none; 'none': only --seeds)")
    g.add_argument("--steps", type=int, help="steps for every dataset (default: the preset's)")
    g.add_argument("--steps-for", action="append", metavar="DATASET=STEPS",
                   help="one dataset's steps (repeat); the cpu preset has its own (finetune.CPU_STEPS_FOR)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--train-per-class", type=int, help="cap on training images per class")
    g.add_argument("--val-per-class", type=int)
    g.add_argument("--test-per-class", type=int)
    g.add_argument("--max-input-side", type=int, help="cap on the input resolution (prefer a zoo file's input_size)")
    g.add_argument("--eval-every", type=int)
    g.add_argument("--wd-mode", choices=["coupled", "sfda"])
    g.add_argument("--bn", choices=["train", "frozen", "reestimate"],
                   help="BatchNorm: batch statistics (literature), pretrained running statistics frozen, "
                        "or re-estimated on the training images then frozen")
    g.add_argument("--head-init", choices=["random", "probe"])
    g.add_argument("--warmup-frac", type=float)
    g.add_argument("--clip-norm", type=float)
    g.add_argument("--device", default="cpu")
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--threads", type=int, help="torch and BLAS threads (1 is fastest on a shared CPU)")
    g.add_argument("--data-root")
    g.add_argument("--no-track", action="store_true")
    g.add_argument("--import", dest="import_path", metavar="FILE", help="trial records (JSON lines) to put "
                   "into the store before anything runs")
    g.add_argument("--export", dest="export_path", metavar="FILE", help="write every trial record of the store "
                   "to this file (JSON lines) at the end")
    g.add_argument("--table-only", action="store_true", help="train nothing: write --csv from the records")
    g.add_argument("--csv", help="write the ground-truth table (one row per pair, from the trial records) "
                                 "to this CSV, under a header with the protocol, command and compute")
    location_flags(g)


def budget_from_args(args):
    """(budget, grid, seeds) from the preset and the explicit knobs."""
    from zoorank.compute.finetune import CPU_LRS, CPU_SEEDS, FULL_LRS, FULL_WDS, Budget

    base = {"cpu": Budget.cpu, "full": Budget.full}.get(args.preset, Budget)()
    changes = {field: getattr(args, dest) for dest, field in KNOBS.items() if getattr(args, dest) is not None}
    budget = dataclasses.replace(base, **changes)
    lrs = _floats(args.lrs) or (list(CPU_LRS) if args.preset == "cpu" else list(FULL_LRS))
    wds = _floats(args.wds) or ([0.0] if args.preset == "cpu" else list(FULL_WDS))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else (
        list(CPU_SEEDS) if args.preset in ("cpu", "full") else [0])
    return budget, [(lr, wd) for lr in lrs for wd in wds], seeds


def lrs_up_from_args(args) -> list[float]:
    """The upward extension of the lr grid: ``--lrs-up`` ('none': none), else the cpu preset's
    (``finetune.CPU_LRS_UP``), else none."""
    from zoorank.compute.finetune import CPU_LRS_UP

    if args.lrs_up is not None:
        if args.lrs_up.strip().lower() == "none":
            return []
        try:
            lrs = _floats(args.lrs_up) or []
        except ValueError:
            lrs = []
        if not lrs or not all(lr > 0 for lr in lrs):
            raise ValueError(f"--lrs-up {args.lrs_up!r}: expected positive learning rates (e.g. 0.03,0.1) or 'none'")
        return lrs
    return list(CPU_LRS_UP) if args.preset == "cpu" else []


def max_seeds_from_args(args, seeds) -> int | None:
    """The most seeds at a pair's chosen point: ``--max-seeds`` ('none': ``None``), else the cpu
    preset's (``finetune.CPU_MAX_SEEDS``), else ``None`` (only ``seeds``)."""
    from zoorank.compute.finetune import CPU_MAX_SEEDS

    text = args.max_seeds
    if text is None:
        return CPU_MAX_SEEDS if args.preset == "cpu" and CPU_MAX_SEEDS > len(seeds) else None
    if text.strip().lower() == "none":
        return None
    if not text.strip().isdigit() or int(text) < len(seeds):
        raise ValueError(f"--max-seeds {text!r}: expected an integer >= the {len(seeds)} seed(s) of --seeds, or 'none'")
    return int(text)


def _steps_for(args, datasets) -> dict[str, int]:
    """Per-dataset steps: the cpu preset's (when ``--steps`` is not given), then ``--steps-for``
    (each must name one of ``datasets``)."""
    from zoorank.compute.finetune import CPU_STEPS_FOR

    out = dict(CPU_STEPS_FOR) if args.preset == "cpu" and args.steps is None else {}
    named = set()
    for item in args.steps_for or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"--steps-for {item!r}: expected DATASET=STEPS with STEPS a positive integer")
        out[name.strip()] = int(value)
        named.add(name.strip())
    if named - set(datasets):
        raise ValueError(f"--steps-for names dataset(s) {', '.join(sorted(named - set(datasets)))} "
                         f"not among --dataset ({', '.join(datasets) or 'none given'})")
    return out


def _test_caps_for(args, datasets) -> dict[str, int]:
    """Per-dataset test caps: the cpu preset's (``finetune.CPU_TEST_PER_CLASS_FOR``) unless
    ``--test-per-class`` is given."""
    from zoorank.compute.finetune import CPU_TEST_PER_CLASS_FOR

    if args.preset != "cpu" or args.test_per_class is not None:
        return {}
    return {d: n for d, n in CPU_TEST_PER_CLASS_FOR.items() if d in datasets}


def budget_groups(args, budget, datasets) -> dict:
    """{budget: [datasets]} in the datasets' order: ``budget`` with each dataset's steps and test cap."""
    steps, tests = _steps_for(args, datasets), _test_caps_for(args, datasets)
    groups: dict = {}
    for d in datasets:
        b = dataclasses.replace(budget, steps=steps.get(d, budget.steps),
                                test_per_class=tests.get(d, budget.test_per_class))
        groups.setdefault(b, []).append(d)
    return groups


def _floats(text):
    return [float(t) for t in text.split(",") if t.strip()] if text else None


def protocol_lines(budget, grid, seeds, zoo: str, steps_for: dict | None = None, lrs_up=(),
                   test_caps_for: dict | None = None, max_seeds: int | None = None) -> list[str]:
    """The CSV header: recipe, protocol (``steps_for``: datasets trained for other step counts;
    ``lrs_up``: the grid's upward extension; ``test_caps_for``: datasets with another test cap;
    ``max_seeds``: the seeds' ceiling), the columns and the command."""
    from zoorank.compute.finetune import RECIPE_VERSION, SE_TARGET, per_dataset_text, steps_text

    lrs = sorted({lr for lr, _ in grid})
    wds = sorted({wd for _, wd in grid})
    b = budget
    steps = steps_text(b.steps, steps_for or {})
    return [
        f"zoorank ground truth (recipe {RECIPE_VERSION}, docs/ground_truth.md): fine-tuned test top-1 per "
        f"(dataset, model) of zoo {zoo}",
        f"Protocol: split {'/'.join(f'{v:g}' for v in b.split)} stratified (seed 0), capped at "
        f"{b.train_per_class}/{b.val_per_class}/{b.test_per_class}{per_dataset_text(b.test_per_class, test_caps_for or {})}"
        f" images per class (train/val/test); "
        f"BatchNorm {b.bn}; head {b.head_init} (linear probe C in {list(b.probe_cs)} on val); "
        f"SGD Nesterov 0.9, {steps} of batch {b.batch_size}, warm-up {b.warmup_frac:g} + cosine, "
        f"clip {b.clip_norm}, wd {wds} ({b.wd_mode}); lr grid {lrs} at seed {seeds[0]}"
        f"{f', extended by {list(lrs_up)} while its largest lr wins on val' if lrs_up else ''}, chosen on val, "
        f"then seeds {seeds[1:]} at the chosen lr"
        f"{f', more (up to {max_seeds}) while fewer than {len(seeds)} survive or seed spread keeps SE > {100 * SE_TARGET:g} pts' if max_seeds else ''}"
        f"; diverged trials excluded (never 0), an lr where most seeds diverge is dropped, "
        f"all-diverged -> lr/10 retries",
        "Columns: test_top1 = mean over seeds; se = sqrt(se_seeds^2 + se_test^2), se_seeds = std/sqrt(seeds), "
        "se_test = sqrt(p(1-p)/n_test); lp_* = linear probe alone; converged = |val(end) - val(80%)| < val_se",
        f"Command: zoorank {' '.join(shlex.quote(a) for a in sys.argv[1:])}",
    ]


def cmd_ground_truth(args, settings) -> int:
    from zoorank.config import apply_offline_defaults
    from zoorank.pipeline.ground_truth_records import export_records, ground_truth_table, import_records, store_records, write_table
    from zoorank.storage.arrays import ArrayStore

    apply_offline_defaults(settings)
    if not (args.dataset or args.import_path or args.export_path):
        raise ValueError("ground-truth: give --dataset (to fine-tune or to write --csv), --import or --export")
    if args.threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(limits=args.threads)
    budget, grid, seeds = budget_from_args(args)
    lrs_up, max_seeds = lrs_up_from_args(args), max_seeds_from_args(args, seeds)
    store = ArrayStore(settings.store)
    if args.import_path:
        counts = import_records(store, args.import_path)
        print(f"imported {counts['imported']} record(s) from {args.import_path} ({counts['present']} already "
              f"in the store, {counts['conflicts']} differing from the store's, which were kept)", file=sys.stderr)
    groups = budget_groups(args, budget, args.dataset or [])
    if args.dataset and not args.table_only:
        from zoorank.orchestration.flows.ground_truth import run_ground_truth

        for group_budget, datasets in groups.items():
            df = run_ground_truth(args.zoo, datasets, grid=grid, seeds=seeds, budget=group_budget, settings=settings,
                                  device=args.device, data_root=args.data_root, track=not args.no_track,
                                  workers=args.workers, threads=args.threads, lrs_up=lrs_up,
                                  max_seeds=max_seeds)
            print(df.to_string(index=False))
    if args.export_path:
        n = export_records(store, args.export_path)
        print(f"exported {n} record(s) to {args.export_path}", file=sys.stderr)
    if args.csv:
        if not args.dataset:
            raise ValueError("ground-truth --csv needs --dataset (and --zoo) to say which pairs")
        import pandas as pd

        from zoorank.pipeline.preflight import resolve_specs
        from zoorank.pipeline.sources import model_identity

        identities = [model_identity(s, store)["identity"] for s in resolve_specs(args.zoo)]
        records = store_records(store)
        table = pd.concat([ground_truth_table(records, budget=b.as_dict(), identities=identities, datasets=ds)
                           for b, ds in groups.items()]).sort_values(["dataset", "model"], kind="stable")
        steps_for = {d: b.steps for b, ds in groups.items() for d in ds}
        test_caps_for = {d: b.test_per_class for b, ds in groups.items() for d in ds}
        write_table(table, args.csv, protocol_lines(budget, grid, seeds, args.zoo, steps_for, lrs_up, test_caps_for,
                                                    max_seeds))
        print(f"table: {args.csv} ({len(table)} pairs)", file=sys.stderr)
    return 0
