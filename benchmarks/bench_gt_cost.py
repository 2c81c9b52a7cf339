"""Per-step cost of each backbone of a ground-truth zoo at its protocol resolution, and the projected
cost of the CPU ground truth (recipe ft-v2, ``docs/ground_truth.md``).

    .venv/bin/python benchmarks/bench_gt_cost.py                       # the zoo of scripts/ground_truth_v3.sh
    .venv/bin/python benchmarks/bench_gt_cost.py --models cnn_usps,mobilenet_v2 --repeats 2

One intra-op thread (as each ground-truth worker runs). Per backbone: the median time of a
training step (forward, backward, clipping, SGD step) at ``Budget.cpu().batch_size`` and of a
forward pass per image (eval batches of 128). Projection per dataset of K classes:
``trials x (steps x step + (n_val x len(eval points) + n_test) x forward) + (n_train + n_val + n_test)
x forward`` with the preset's caps, trials = 3 lrs + 2 more seeds. Writes a Markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def measure(spec, batch_size: int, repeats: int) -> tuple[float, float]:
    import torch
    from torch import nn

    from zoorank.zoo import load_model

    backbone = load_model(spec)
    h, w = backbone.config.input_size
    model = nn.Sequential(backbone, nn.Linear(backbone.config.feature_dim, 10))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    x, y = torch.rand(batch_size, 3, h, w), torch.randint(0, 10, (batch_size,))
    model.train()
    times = []
    for _ in range(repeats + 1):                        # the first step warms up
        t = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        xb = torch.rand(128, 3, h, w)
        model(xb)
        t = time.perf_counter()
        model(xb)
        fwd = (time.perf_counter() - t) / 128
    return statistics.median(times[1:]), fwd


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zoo", default="results/ground_truth/zoo_80px.yaml")
    p.add_argument("--models", help="only these ids (comma-separated)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--datasets", type=int, default=6, help="datasets in the projection")
    p.add_argument("--classes", type=int, default=10, help="classes per dataset in the projection")
    p.add_argument("--out", default="benchmarks/results/gt_cost.md")
    args = p.parse_args(argv)

    import os

    import torch
    from threadpoolctl import threadpool_limits

    from zoorank.compute.finetune import CPU_GRID, CPU_SEEDS, Budget, eval_points
    from zoorank.zoo import load_zoo

    torch.set_num_threads(1)
    threadpool_limits(1)
    b = Budget.cpu()
    specs = load_zoo(args.zoo)
    if args.models:
        keep = set(args.models.split(","))
        specs = [s for s in specs if (s if isinstance(s, str) else s.id) in keep]
    k = args.classes
    n_train, n_val, n_test = b.train_per_class * k, b.val_per_class * k, b.test_per_class * k
    trials = len(CPU_GRID) + len(CPU_SEEDS) - 1
    evals = len(eval_points(b))
    rows, total = [], 0.0
    for spec in specs:
        step, fwd = measure(spec, b.batch_size, args.repeats)
        per_trial = b.steps * step + (n_val * evals + n_test) * fwd
        per_pair = trials * per_trial + (n_train + n_val + n_test) * fwd
        total += per_pair * args.datasets
        mid = spec if isinstance(spec, str) else spec.id
        rows.append(f"| {mid} | {step:.3f} | {fwd * 1000:.2f} | {per_trial:.0f} | {per_pair:.0f} |")
        print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    lines = [f"# Ground-truth cost (recipe ft-v2, `--preset cpu`), zoo `{args.zoo}`", "",
             f"1 thread, batch {b.batch_size}; load average at the end {load:.1f} on {os.cpu_count()} cores "
             "(other jobs running inflate every figure).", "",
             "| backbone | step (s) | forward (ms / image) | trial (s) | pair (s, K=%d) |" % k,
             "|---|---|---|---|---|", *rows, "",
             f"Projected: {total:.0f} s = {total / 3600:.2f} CPU-hours for {args.datasets} datasets of {k} classes "
             f"({total / 7200:.2f} h wall with 2 workers), {trials} trials per pair, {b.steps} steps."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
