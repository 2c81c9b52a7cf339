"""Whole-network LEAD NTK (``zoorank.metrics.lead.network_ntk``) against feature extraction of the
same (model, dataset) pair, at CIFAR-10 size (N = 50,000 images, K = 10, S = 64).

Only S x K = 640 images go through the NTK; extraction touches all N. Per model, in one
process and interleaved (so both see the same machine load):

- extraction: ``zoorank.compute.extract.extract_features`` (the pipeline's path: uint8 -> [0, 1] RGB,
  resized to the model's native input size, batch 64, ``no_grad``) on a sample of
  ``--extract-images`` images, timed per image and extrapolated x 50,000 (said in the report);
- NTK: ``network_ntk_parts`` (``params="all"``, raw features, default engine and chunk size)
  on ``--ntk-per-class`` x 10 images (640 by default; a smaller count is extrapolated
  linearly to 640, the cost being a sum over chunks, and the report says so);
- engines: "layers" vs "vmap" vs a plain per-sample autograd loop on ``--engine-images``
  images of the first model (ratios side by side);
- memory: peak RSS (``ru_maxrss`` of a fresh subprocess) of the NTK of ``--rss-model`` at its
  native input size with S = ``--rss-samples`` images of one class, per chunk size.

Images: scikit-learn's digits (10 classes, the offline default dataset) upscaled to each
model's input size; the cost of both stages does not depend on the pixel values.

    .venv/bin/python benchmarks/bench_network_ntk.py --out benchmarks/results/network_ntk.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

N_CIFAR, K_CIFAR, S_PAPER = 50_000, 10, 64


def _images_fn(ds, size):
    from zoorank.compute.extract import to_model_input

    def load(rows):
        return to_model_input(torch.from_numpy(np.asarray(ds.images(rows))), size)
    return load


class _Clock:
    """Wall and process CPU seconds (all threads) of a block: on a machine shared with other
    jobs the CPU seconds are the steadier measure of the work done."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0


def _time_extract(backbone, ds, n):
    from zoorank.compute.extract import extract_features

    sub = ds.subset(np.arange(n))
    with _Clock() as clk:
        extract_features(backbone, sub, batch_size=64, with_outputs=False)
    return clk.wall / n, clk.cpu / n


def _time_ntk(backbone, ds, per_class, **kw):
    """Runs the NTK; also returns the CPU seconds of the first chunk (it carries the fixed
    costs: the probe image, the head's init and the layer engine's check against autograd)
    and of the later chunks, per image, from the progress callback."""
    from zoorank.metrics.lead.network_ntk import network_ntk_parts

    labels = np.asarray(ds.labels)
    marks = []
    with _Clock() as clk:
        parts = network_ntk_parts(backbone, _images_fn(ds, backbone.config.input_size), labels,
                                  samples_per_class=per_class,
                                  progress=lambda done, total: marks.append((done, time.process_time())),
                                  **kw)
    first_done, first_t = marks[0]
    first = first_t - clk.c0
    rest_images = marks[-1][0] - first_done
    steady = (marks[-1][1] - first_t) / rest_images if rest_images else float("nan")
    return clk, parts, first, first_done, steady


def _loop_norms(backbone, x, head_widths=(1024, 2048)):
    """Reference engine: one autograd call per image (backbone parameters only)."""
    params = [p for p in backbone.parameters() if p.requires_grad]
    from zoorank.metrics.lead import init_random_head

    with torch.no_grad():
        d = backbone(x[:1]).shape[1]
    head = init_random_head(d, K_CIFAR, head_widths)
    out = []
    for i in range(x.shape[0]):
        a = backbone(x[i:i + 1])
        for j, (w, b) in enumerate(head):
            a = a @ w.T + b
            if j < len(head) - 1:
                a = torch.relu(a)
        gs = torch.autograd.grad(a.sum(), params, allow_unused=True)
        out.append(sum(float(g.double().square().sum()) for g in gs if g is not None))
    return np.array(out)


def engines(model, ds, n):
    from zoorank.metrics.lead.per_sample_grads import norms_by_layer, norms_by_vmap
    from zoorank.metrics.lead.network_ntk import _Network
    from zoorank.metrics.lead import init_random_head
    from zoorank.zoo import load_model

    bb = load_model(model).eval()
    x = _images_fn(ds, bb.config.input_size)(np.arange(n))
    net = _Network(bb, model, True, torch.float32, torch.device("cpu"), "none", None)
    with torch.no_grad():
        d = net.features(x[:1]).shape[1]
    net.head = init_random_head(d, K_CIFAR)
    res = {}
    with _Clock() as clk:
        sq_l, _ = norms_by_layer(net.objective, x, list(net.trainable.values()), check=False)
    res["layers"], res["layers_wall"] = clk.cpu, clk.wall
    with _Clock() as clk:
        sq_v, _ = norms_by_vmap(net.objective_single, net.trainable, x)
    res["vmap"], res["vmap_wall"] = clk.cpu, clk.wall
    with _Clock() as clk:
        sq_r = _loop_norms(bb, x)
    res["loop"], res["loop_wall"] = clk.cpu, clk.wall
    res["max_rel_diff_layers_vs_loop"] = float(np.max(np.abs(sq_l.numpy() - sq_r) / sq_r))
    res["max_rel_diff_vmap_vs_loop"] = float(np.max(np.abs(sq_v.numpy() - sq_r) / sq_r))
    res["images"] = n
    return res


def rss_child(model, samples, chunk):
    """Run in a fresh process: the NTK of one class of ``samples`` images; prints JSON."""
    from zoorank.data import load_dataset
    from zoorank.metrics.lead.network_ntk import network_ntk_parts
    from zoorank.zoo import load_model

    ds = load_dataset("digits")
    bb = load_model(model)
    labels = np.zeros(samples, dtype=np.int64)
    load = _images_fn(ds, bb.config.input_size)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with _Clock() as clk:
        parts = network_ntk_parts(bb, load, labels, samples_per_class=samples, chunk_size=chunk)
    secs = clk.wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"model": model, "samples": samples, "chunk_size": chunk,
                      "peak_rss_gib": peak / 2**20, "rss_before_ntk_gib": base / 2**20,
                      "seconds": secs, "engine": parts.engine,
                      "lambda": float(parts.total[0]), "backbone_share": float(parts.backbone[0] / parts.total[0])}))


def seed_study(per_class, models):
    """Spearman rank correlation of the per-class lambda (whole, backbone part, head part)
    across head seeds 0, 1, 2 on the same images, raw and unit-norm head input; JSON lines."""
    import scipy.stats
    from zoorank.data import load_dataset
    from zoorank.metrics.lead.network_ntk import network_ntk_parts
    from zoorank.zoo import load_model

    ds = load_dataset("digits")
    labels = np.asarray(ds.labels)
    for model in models:
        bb = load_model(model)
        load = _images_fn(ds, bb.config.input_size)
        for norm in ("none", "l2"):
            runs = [network_ntk_parts(bb, load, labels, samples_per_class=per_class, feature_norm=norm,
                                      head_random_state=seed) for seed in (0, 1, 2)]
            rho = {}
            for part in ("total", "backbone", "head"):
                vals = [getattr(r, part) for r in runs]
                rho[part] = [round(float(scipy.stats.spearmanr(vals[a], vals[b]).statistic), 3)
                             for a, b in ((0, 1), (0, 2), (1, 2))]
            print(json.dumps({"model": model, "S": per_class, "feature_norm": norm,
                              "spearman_across_head_seeds": rho,
                              "backbone_share": round(float(np.mean([r.backbone.sum() / r.total.sum()
                                                                     for r in runs])), 3),
                              "between_class_cv": round(float(np.mean([r.total.std() / r.total.mean()
                                                                       for r in runs])), 3)}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["mobilenet_v2", "efficientnet_lite0", "cnn_digitrec"])
    ap.add_argument("--ntk-per-class", type=int, default=S_PAPER)
    ap.add_argument("--ntk-per-class-large", type=int, default=None,
                    help="S actually run for 224-px models (extrapolated to 64); default: 64")
    ap.add_argument("--extract-images", type=int, default=256)
    ap.add_argument("--engine-model", default="mobilenet_v2")
    ap.add_argument("--engine-images", type=int, default=8)
    ap.add_argument("--rss-model", default="vgg16bn_craft")
    ap.add_argument("--rss-samples", type=int, default=S_PAPER)
    ap.add_argument("--rss-chunks", type=int, nargs="*", default=[8])
    ap.add_argument("--rss-json", default=None,
                    help="read the memory rows from this file (JSON lines of --rss-child) instead of measuring")
    ap.add_argument("--skip-engines", action="store_true")
    ap.add_argument("--seed-study", nargs="+", metavar=("S", "MODEL"), default=None,
                    help="only the head-seed reproducibility study: S then model ids")
    ap.add_argument("--report-from", default=None,
                    help="write the report from a JSON file saved by an earlier run (with --rss-json)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--rss-child", nargs=3, metavar=("MODEL", "SAMPLES", "CHUNK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.report_from:
        with open(args.report_from) as fh:
            saved = json.load(fh)
        rss = []
        if args.rss_json:
            with open(args.rss_json) as fh:
                rss = [json.loads(line) for line in fh if line.startswith("{")]
        saved_args = argparse.Namespace(**saved["args"])
        write_report(args.out, saved["rows"], saved["engines"], rss, saved["meta"], saved_args)
        return
    if args.seed_study:
        seed_study(int(args.seed_study[0]), args.seed_study[1:])
        return
    if args.rss_child:
        rss_child(args.rss_child[0], int(args.rss_child[1]), int(args.rss_child[2]))
        return
    from zoorank.data import load_dataset
    from zoorank.zoo import load_model

    ds = load_dataset("digits")
    t_start = time.time()
    load1 = os.getloadavg()[0]
    rows = []
    for model in args.models:
        bb = load_model(model)
        large = max(bb.config.input_size) >= 128
        s_run = args.ntk_per_class_large if (large and args.ntk_per_class_large) else args.ntk_per_class
        ex_wall, ex_cpu = _time_extract(bb, ds, args.extract_images)
        clk, parts, first, first_n, steady = _time_ntk(bb, ds, s_run)
        n_run = int(parts.counts.sum())
        scale = (K_CIFAR * S_PAPER) / n_run
        ntk_640 = first + steady * (K_CIFAR * S_PAPER - first_n) if n_run < K_CIFAR * S_PAPER else clk.cpu
        rows.append({"model": model, "input_size": list(bb.config.input_size),
                     "params": int(sum(p.numel() for p in bb.parameters())),
                     "extract_cpu_s_per_image": ex_cpu, "extract_wall_s_per_image": ex_wall,
                     "extract_50k_cpu_s": ex_cpu * N_CIFAR, "extract_50k_wall_s": ex_wall * N_CIFAR,
                     "ntk_images_run": n_run, "ntk_cpu_s_run": clk.cpu, "ntk_wall_s_run": clk.wall,
                     "ntk_first_chunk_cpu_s": first, "ntk_steady_cpu_s_per_image": steady,
                     "ntk_640_cpu_s": ntk_640, "ntk_640_wall_s": clk.wall * scale,
                     "ratio_cpu": ntk_640 / (ex_cpu * N_CIFAR),
                     "ratio_wall": clk.wall * scale / (ex_wall * N_CIFAR), "engine": parts.engine,
                     "lambda_mean": float(parts.total.mean()),
                     "backbone_share": float(parts.backbone.sum() / parts.total.sum()),
                     "backbone_share_per_class": (parts.backbone / parts.total).round(3).tolist()})
        print(json.dumps(rows[-1]), flush=True)
        del bb
    eng = None if args.skip_engines else engines(args.engine_model, ds, args.engine_images)
    print(json.dumps({"engines": eng}), flush=True)
    rss = []
    if args.rss_json:
        with open(args.rss_json) as fh:
            rss = [json.loads(line) for line in fh if line.startswith("{")]
    for chunk in ([] if args.rss_json else args.rss_chunks):
        out = subprocess.run([sys.executable, __file__, "--rss-child", args.rss_model, str(args.rss_samples),
                              str(chunk)], capture_output=True, text=True, check=True)
        rss.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rss[-1]), flush=True)
    meta = {"host": platform.node(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "load_avg_start": load1, "load_avg_end": os.getloadavg()[0],
            "wall_s": time.time() - t_start}
    with open((args.out or "network_ntk.md") + ".json", "w") as fh:
        json.dump({"rows": rows, "engines": eng, "meta": meta, "args": vars(args)}, fh, indent=1)
    if args.out:
        write_report(args.out, rows, eng, rss, meta, args)


def write_report(path, rows, eng, rss, meta, args):
    lines = ["# Whole-network LEAD NTK vs feature extraction (CIFAR-10 size)", "",
             f"`benchmarks/bench_network_ntk.py`, run once on this CPU ({meta['cpu_count']} cores, torch "
             f"{meta['torch']}, {meta['torch_threads']} threads) while other agents loaded the machine "
             f"(1-min load average {meta['load_avg_start']:.1f} at the start, {meta['load_avg_end']:.1f} at "
             f"the end; wall {meta['wall_s'] / 60:.0f} min). Absolute seconds are inflated by the load; the "
             "ratios compare the two stages of one model measured in the same process, one right after "
             "the other. The memory rows come from a separate process run at the same time.", "",
             "Extraction: `extract_features` (batch 64, native input size, no_grad) timed on "
             f"{args.extract_images} digits images, **extrapolated** per image x 50,000. NTK: "
             "`network_ntk_parts(params='all', feature_norm='none')` with the default engine and chunk "
             "size (`default_chunk_size`: 8 images at 224 px) on K=10 classes x S images; where fewer than 640 images were run, the CPU time "
             "is **extrapolated** to 640 as first chunk + (640 - 8) x the later chunks' CPU seconds per "
             "image (the first chunk carries the fixed costs: probe image, head init, the layer "
             "engine's check against autograd); the wall ratio is extrapolated linearly.", "",
             "Seconds are process CPU seconds (both threads; steadier than wall time on a shared "
             "machine), wall-clock ratios beside them.", "",
             "| model | input | params | extraction CPU s/img | extraction x 50k (CPU s) | NTK images run "
             "| NTK CPU s (run) | NTK CPU s (640) | NTK / extraction (CPU) | (wall) | engine | mean lambda "
             "| backbone share |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['input_size'][0]}x{r['input_size'][1]} | {r['params'] / 1e6:.2f} M "
                     f"| {r['extract_cpu_s_per_image']:.4f} | {r['extract_50k_cpu_s']:.0f} | {r['ntk_images_run']} "
                     f"| {r['ntk_cpu_s_run']:.1f} | {r['ntk_640_cpu_s']:.1f} | **{100 * r['ratio_cpu']:.1f}%** "
                     f"| {100 * r['ratio_wall']:.1f}% | {r['engine']} "
                     f"| {r['lambda_mean']:.4g} | {100 * r['backbone_share']:.1f}% |")
    lines += ["", "Target: NTK <= 10% of extraction.", ""]
    for note in meta.get("notes", []):
        lines += [note, ""]
    if eng is not None:
        lines += [f"## Engines ({args.engine_model}, {eng['images']} images, backbone parameters, one run each)", "",
              "| engine | CPU s | wall s | vs layers (CPU) | max rel. diff. vs loop |", "|---|---|---|---|---|",
              f"| layers (per-operation closed forms, batched) | {eng['layers']:.1f} | {eng['layers_wall']:.1f} | 1.0x | {eng['max_rel_diff_layers_vs_loop']:.1e} |",
              f"| vmap (torch.func) | {eng['vmap']:.1f} | {eng['vmap_wall']:.1f} | {eng['vmap'] / eng['layers']:.1f}x | {eng['max_rel_diff_vmap_vs_loop']:.1e} |",
              f"| loop (one autograd call per image) | {eng['loop']:.1f} | {eng['loop_wall']:.1f} | {eng['loop'] / eng['layers']:.1f}x | 0 |", ""]
    lines += [f"## Peak memory ({args.rss_model}, native input size, S={args.rss_samples} images of one class)", "",
              "Fresh subprocess, `ru_maxrss` after the NTK (includes Python, torch and the loaded model).", "",
              "| chunk size | peak RSS (GiB) | RSS before the NTK (GiB) | wall seconds | engine |", "|---|---|---|---|---|"]
    for r in rss:
        lines.append(f"| {r['chunk_size']} | {r['peak_rss_gib']:.2f} | {r['rss_before_ntk_gib']:.2f} "
                     f"| {r['seconds']:.0f} | {r['engine']} |")
    lines += ["", "Target: < 3 GiB with the chunk size used.", "", "Raw JSON:", "", "```json",
              json.dumps({"rows": rows, "engines": eng, "rss": rss, "meta": meta}, indent=1), "```", ""]
    with open(path, "w") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    main()
