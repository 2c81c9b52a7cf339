"""Feature-extraction throughput against the backbone's pure forward pass (overhead ratio).

Usage::

    .venv/bin/python benchmarks/bench_extract.py                      # CPU: mobilenet_v2 + cnn_mnist, fashion_mnist
    .venv/bin/python benchmarks/bench_extract.py --device cuda --n 8192 --batch-size 256
    .venv/bin/python benchmarks/bench_extract.py --datasets digits openclipart --models cnn_mnist

For every (model, dataset) it times, on the same ``--n`` images (seeded, class-balanced):

* ``forward``: ``backbone.forward_with_outputs`` alone on batches made beforehand and
  already on the device at the model's input size (the floor: what the network costs);
* ``loader``: the extractor's input path alone (DataLoader of uint8 batches, decode/render,
  host-to-device copy, uint8 -> float, resize) with no model;
* ``extract``: ``zoorank.compute.extract.extract_features`` end to end.

and prints one JSON line with images/s of each and ``overhead_ratio`` = extract time /
forward time (1.0 = the data path is completely hidden or free). Timings are medians of
``--repeats`` runs after one warm-up batch; CUDA work is synchronised before reading clocks.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zoorank.data import load_dataset  # noqa: E402
from zoorank.compute.extract import UInt8Batches, default_num_workers, extract_features, to_model_input  # noqa: E402
from zoorank.zoo import load_model  # noqa: E402


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _median_time(fn, dev, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_one(model_id: str, dataset_id: str, args) -> dict:
    dev = torch.device(args.device)
    t0 = time.perf_counter()
    model = load_model(model_id, device=args.device)
    model.eval()
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    load_model_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ds = load_dataset(dataset_id, root=args.root, random_state=0)
    per_class = math.ceil(args.n / ds.n_classes)
    ds = load_dataset(dataset_id, root=args.root, max_per_class=per_class, random_state=0)
    ds = ds.subset(np.arange(min(args.n, len(ds))))
    load_data_s = time.perf_counter() - t0
    n = len(ds)
    size = tuple(model.config.input_size)
    bs = args.batch_size
    workers = args.num_workers if args.num_workers is not None else default_num_workers(ds, dev)
    amp_dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16

    # pre-made batches on the device, exactly what the extractor feeds the model
    made = UInt8Batches(ds, bs, size)
    batches = [to_model_input(made[b][0].to(dev), size, channels_last=args.channels_last)
               for b in range(len(made))]

    def forward_all():
        with torch.no_grad(), torch.autocast(dev.type, dtype=amp_dtype, enabled=args.autocast):
            for x in batches:
                feats, probs = model.forward_with_outputs(x)
            return feats

    def loader_all():
        loader = torch.utils.data.DataLoader(
            UInt8Batches(ds, bs, size), batch_size=None, num_workers=workers,
            pin_memory=dev.type == "cuda")
        for u8, _, _ in loader:
            to_model_input(u8.to(dev, non_blocking=True), size, channels_last=args.channels_last)

    def extract_all():
        return extract_features(model, ds, batch_size=bs, device=args.device, num_workers=workers,
                                autocast=args.autocast, channels_last=args.channels_last)

    with torch.no_grad():  # warm-up: kernels, cudnn autotune, allocator
        model.forward_with_outputs(batches[0])
    extract_features(model, ds.subset(np.arange(min(bs, n))), batch_size=bs, device=args.device,
                     num_workers=0, autocast=args.autocast, channels_last=args.channels_last)

    forward_s = _median_time(forward_all, dev, args.repeats)
    loader_s = _median_time(loader_all, dev, args.repeats)
    extract_s = _median_time(extract_all, dev, args.repeats)
    del batches
    out = {
        "bench": "extract",
        "model": model_id,
        "dataset": dataset_id,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "n_images": n,
        "image_size": list(ds.image_size) if ds.image_size else "variable",
        "input_size": list(size),
        "batch_size": bs,
        "num_workers": workers,
        "autocast": args.autocast,
        "channels_last": args.channels_last,
        "forward_images_per_s": round(n / forward_s, 1),
        "loader_images_per_s": round(n / loader_s, 1),
        "extract_images_per_s": round(n / extract_s, 1),
        "overhead_ratio": round(extract_s / forward_s, 3),
        "forward_s": round(forward_s, 4),
        "loader_s": round(loader_s, 4),
        "extract_s": round(extract_s, 4),
        "load_model_s": round(load_model_s, 3),
        "load_dataset_s": round(load_data_s, 3),
        "repeats": args.repeats,
        "torch": torch.__version__,
    }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--models", nargs="+", default=["mobilenet_v2", "cnn_mnist"])
    p.add_argument("--datasets", nargs="+", default=["fashion_mnist"])
    p.add_argument("--root", default=None, help="dataset root override (e.g. a copy of the files)")
    p.add_argument("--n", type=int, default=None, help="images per run (default 192 on CPU, 8192 on CUDA)")
    p.add_argument("--batch-size", type=int, default=None, help="default 64 on CPU, 256 on CUDA")
    p.add_argument("--num-workers", type=int, default=None,
                   help="default: zoorank.compute.extract.default_num_workers (0 on CPU and for in-memory data)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--autocast", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    args.n = args.n or (8192 if cuda else 192)
    args.batch_size = args.batch_size or (256 if cuda else 64)
    failed = 0
    for model_id in args.models:
        for dataset_id in args.datasets:
            try:
                row = bench_one(model_id, dataset_id, args)
            except Exception as exc:  # report and go on with the other pairs
                failed += 1
                row = {"bench": "extract", "model": model_id, "dataset": dataset_id, "device": args.device,
                       "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(row), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
