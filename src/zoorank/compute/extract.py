"""Feature extraction: a backbone x a :class:`~zoorank.data.LabelledImages` -> arrays.

The backbone contract (``zoorank.zoo.Backbone``): ``backbone.config.input_size`` is ``(H, W)``,
``forward(x)`` takes float ``(B, 3, H, W)`` RGB in [0, 1] and returns ``(B, D)`` features,
``forward_with_outputs(x)`` returns ``(features, source_probs or None)``. Normalisation is
inside the backbone, so this module only delivers [0, 1] RGB at the right size.

Data path (one policy, so results do not depend on ``batch_size`` or ``num_workers``):

* the ``DataLoader`` yields **uint8** ``(B, H, W, 3)`` batches in dataset order; each loader
  item is a whole batch (one vectorised array read for in-memory datasets);
* datasets whose images all share one size (MNIST-like arrays, rendered glyphs/emoji) are
  stacked as uint8 and resized **on the device** (``F.interpolate``, bilinear, antialiased
  when shrinking; for pure upscaling antialiasing is a no-op and is skipped), after the
  uint8 -> float / 255 conversion, also on the device;
* variable-size datasets (files) are resized to ``input_size`` on the CPU with PIL
  (bilinear, antialiased), inside the loader workers, then stacked;
* ``pin_memory`` + ``non_blocking`` copies on CUDA, both ways: the features of batch k are
  copied back while batch k+1 runs, so the GPU does not idle on the host; ``torch.no_grad``;
  optional autocast (float16 on CUDA, bfloat16 on CPU) and channels-last.

Measured (``benchmarks/bench_extract.py``, H100, 8,192 Fashion-MNIST images upscaled
28 -> 224, batch 256): MobileNetV2 extraction runs at 1.04x the time of its bare forward
pass on ready-made device batches (1.13x with autocast + channels-last).

The two resize paths agree to within one grey level (torch's antialiased bilinear was
designed to match PIL's; ``tests/unit/test_extract.py`` checks it).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from zoorank.data.images import resize_rgb

ProgressFn = Callable[[int, int], None]


@dataclass
class ExtractionResult:
    """``features`` float32 ``(N, D)``, ``labels`` int64 ``(N,)``, ``source_probs`` float32
    ``(N, C)`` or ``None``, in dataset order; ``seconds``: wall time of the extraction."""

    features: np.ndarray
    labels: np.ndarray
    source_probs: np.ndarray | None
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return len(self.labels) / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class FeatureBatch:
    """One chunk from :func:`iter_feature_batches`: rows ``start:stop`` of the dataset."""

    start: int
    stop: int
    features: np.ndarray
    labels: np.ndarray
    source_probs: np.ndarray | None


class UInt8Batches(torch.utils.data.Dataset):
    """Loader items are whole batches: ``(uint8 (B, H, W, 3) tensor, int64 labels, start)``.

    Uniform-size datasets are stacked at their own size (resized later on the device);
    variable-size ones are resized here, on the CPU, with PIL to ``input_size``.
    """

    def __init__(self, dataset, batch_size: int, input_size: tuple[int, int]):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.uniform = dataset.image_size is not None

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __getitem__(self, b: int):
        if not 0 <= b < len(self):
            raise IndexError(f"batch {b} out of range for {len(self)} batches")
        start = b * self.batch_size
        stop = min(start + self.batch_size, len(self.dataset))
        idx = np.arange(start, stop)
        images = self.dataset.images(idx)
        if not (self.uniform and isinstance(images, np.ndarray)):
            # uniform datasets: an odd-sized image (e.g. EXIF-rotated) is brought to the common
            # size; variable-size datasets: every image to input_size. Per image, so the result
            # does not depend on which batch an image falls in.
            target = self.dataset.image_size if self.uniform else self.input_size
            images = np.stack([resize_rgb(np.asarray(im, dtype=np.uint8), target) for im in images])
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"{self.dataset.dataset_id}: expected uint8 (B, H, W, 3) images, "
                             f"got {images.dtype} {images.shape}")
        labels = np.asarray(self.dataset.labels[start:stop], dtype=np.int64)
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.copy()), start


def to_model_input(batch_u8: torch.Tensor, input_size, *, channels_last: bool = False) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` (on any device) -> float ``(B, 3, *input_size)`` in [0, 1].

    Conversion and (antialiased bilinear) resizing happen on ``batch_u8``'s device.
    """
    # NCHW-contiguous (a cheap uint8 copy) so interpolate runs its standard-layout kernels
    x = batch_u8.permute(0, 3, 1, 2).contiguous().float().div_(255.0)
    size = (int(input_size[0]), int(input_size[1]))
    h, w = x.shape[-2:]
    if x.shape[0] == 0:  # CUDA's interpolate rejects empty batches ("invalid argument")
        x = x.new_empty((0, 3, *size))
    elif (h, w) != size:
        # antialiasing only matters when shrinking; for pure upscaling it equals plain bilinear
        # (to 1e-5) and the plain kernel is faster
        shrink = size[0] < h or size[1] < w
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _input_size(backbone, input_size):
    if input_size is not None:
        return tuple(int(v) for v in input_size)
    config = getattr(backbone, "config", None)
    size = getattr(config, "input_size", None)
    if size is None:
        raise ValueError("backbone has no config.input_size; pass input_size=(H, W)")
    return (int(size[0]), int(size[1]))


def default_num_workers(dataset, device) -> int:
    """0 on CPU (workers would compete with the model for the cores) and for in-memory
    datasets (a batch is one array slice; worker IPC costs more than it saves); on CUDA, for
    decoded/rendered images, half the cores (2 to 8)."""
    if torch.device(device).type != "cuda" or getattr(dataset, "in_memory", False):
        return 0
    return int(min(8, max(2, (os.cpu_count() or 2) // 2)))


def _resolve_device(device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but torch.cuda.is_available() is False")
    return dev


def _finish(item) -> FeatureBatch:
    start, n, outs, labels, event = item
    if event is not None:
        event.synchronize()
    feats = outs[0].cpu().numpy()
    probs = outs[1].cpu().numpy() if len(outs) > 1 else None
    if event is not None:  # pinned buffers are reused by the caching allocator: copy out
        feats = feats.copy()
        probs = probs.copy() if probs is not None else None
    return FeatureBatch(start, start + n, feats, labels.numpy(), probs)


def iter_feature_batches(
    backbone: torch.nn.Module,
    dataset,
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device = "cpu",
    autocast: bool = False,
    channels_last: bool = False,
    with_outputs: bool = True,
    input_size: tuple[int, int] | None = None,
    progress: ProgressFn | None = None,
) -> Iterator[FeatureBatch]:
    """Yield :class:`FeatureBatch` chunks in dataset order (for incremental writing).

    The backbone is moved to ``device`` and put in eval mode for the duration (its training
    flag is restored afterwards). ``num_workers``: loader processes (default
    :func:`default_num_workers`: 0 on CPU and for in-memory arrays, 2-8 on CUDA otherwise).
    ``with_outputs``: also return source-task probabilities when the backbone has
    ``forward_with_outputs``. ``progress(done, total)`` is called after every batch. On CUDA
    a batch is handed out once the next one has been queued on the GPU (one batch in flight).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    dev = _resolve_device(device)
    size = _input_size(backbone, input_size)
    if num_workers is None:
        num_workers = default_num_workers(dataset, dev)
    batches = UInt8Batches(dataset, batch_size, size)
    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, shuffle=False, num_workers=int(num_workers),
        pin_memory=dev.type == "cuda", prefetch_factor=2 if num_workers > 0 else None,
        # "forkserver", not fork: inside a Prefect flow (threads, event loops, at-fork hooks)
        # forked workers died at start (exit code 1); a clean fork server avoids that
        multiprocessing_context="forkserver" if num_workers > 0 else None,
        persistent_workers=False,
    )
    backbone.to(dev)
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    was_training = backbone.training
    backbone.eval()
    use_outputs = with_outputs and hasattr(backbone, "forward_with_outputs")
    amp_dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
    total = len(dataset)
    done = 0
    try:
        with torch.no_grad():
            pending = None  # CUDA: the previous batch, its copy to pinned host memory queued
            for batch_u8, labels, start in loader:
                x = to_model_input(batch_u8.to(dev, non_blocking=True), size, channels_last=channels_last)
                with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=bool(autocast)):
                    if use_outputs:
                        feats, probs = backbone.forward_with_outputs(x)
                    else:
                        feats, probs = backbone(x), None
                n = x.shape[0]
                outs = [feats.reshape(n, -1).float()]
                if probs is not None:
                    outs.append(probs.reshape(n, -1).float())
                if dev.type == "cuda":
                    # queue the device->host copies and hand out the *previous* batch: the GPU
                    # works on this one while the host finishes that one and loads the next
                    host = [torch.empty(o.shape, dtype=o.dtype, pin_memory=True).copy_(o, non_blocking=True)
                            for o in outs]
                    event = torch.cuda.Event()
                    event.record()
                    ready, pending = pending, (int(start), n, host, labels, event)
                else:
                    ready = (int(start), n, outs, labels, None)
                if ready is not None:
                    done += ready[1]
                    yield _finish(ready)
                    if progress is not None:
                        progress(done, total)
            if pending is not None:
                done += pending[1]
                yield _finish(pending)
                if progress is not None:
                    progress(done, total)
    finally:
        backbone.train(was_training)


def extract_features(backbone: torch.nn.Module, dataset, **options) -> ExtractionResult:
    """Features (and source-task probabilities) of every image of ``dataset``, in order.

    ``options``: the keyword arguments of :func:`iter_feature_batches` (batch size, workers,
    device, autocast, channels_last, with_outputs, input_size, progress), passed on as they are
    (an unknown one is a TypeError naming it). Returns float32 features and
    probabilities; ``source_probs`` is ``None`` when the backbone has no source head or
    ``with_outputs=False``.
    """
    t0 = time.perf_counter()
    n = len(dataset)
    feats = probs = None
    has_probs: bool | None = None
    for fb in iter_feature_batches(backbone, dataset, **options):
        if feats is None:
            feats = np.empty((n, fb.features.shape[1]), dtype=np.float32)
            has_probs = fb.source_probs is not None
            if has_probs:
                probs = np.empty((n, fb.source_probs.shape[1]), dtype=np.float32)
        if (fb.source_probs is not None) != has_probs:
            raise ValueError("backbone returned source probabilities for some batches only")
        feats[fb.start:fb.stop] = fb.features
        if has_probs:
            probs[fb.start:fb.stop] = fb.source_probs
    if feats is None:  # empty dataset
        dim = int(getattr(getattr(backbone, "config", None), "feature_dim", 0) or 0)
        feats = np.empty((0, dim), dtype=np.float32)
    labels = np.asarray(dataset.labels, dtype=np.int64).copy()
    return ExtractionResult(feats, labels, probs, time.perf_counter() - t0)
