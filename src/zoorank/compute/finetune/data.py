"""The images a trial sees: seeded stratified train / val / test subsets, the input size, and
batched prediction / accuracy."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .budget import Budget


@dataclass
class SplitData:
    """uint8 images (N, H, W, 3) and int labels of the train / val / test subsets."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    n_classes: int
    #: what identifies the split (dataset fingerprint, seed, fractions, per-class caps); the caller
    #: that keys stored results digests it into ``fingerprint`` (compute/ does no key hashing)
    identity: list = field(default_factory=list)
    fingerprint: str = ""


def _stack(images) -> np.ndarray:
    if isinstance(images, np.ndarray):
        return images
    from zoorank.data.images import resize_rgb  # variable-size images -> one size

    sizes = {im.shape[:2] for im in images}
    if len(sizes) == 1:
        return np.stack(images)
    side = 128
    return np.stack([resize_rgb(im, (side, side)) for im in images])


def prepare_splits(dataset, budget: Budget, *, split_seed: int = 0) -> SplitData:
    """Seeded stratified split of ``dataset`` (a LabelledImages) with ``budget.split`` fractions, then
    each split capped at its ``*_per_class`` size (a smaller class keeps every image it has)."""
    from zoorank.data import stratified_split
    from zoorank.data.splits import cap_per_class
    splits = stratified_split(dataset.labels, fractions=budget.split, random_state=split_seed)
    out = {}
    for name, per_class in (("train", budget.train_per_class), ("val", budget.val_per_class),
                            ("test", budget.test_per_class)):
        idx = np.sort(splits[name])
        if per_class is not None:
            idx = idx[cap_per_class(np.asarray(dataset.labels)[idx], per_class, random_state=split_seed)]
        if idx.size == 0:
            raise ValueError(f"dataset {getattr(dataset, 'dataset_id', '?')!r}: the {name} split is empty "
                             f"(split fractions {budget.split})")
        sub = dataset.subset(idx)
        out[name] = (_stack(sub.images(np.arange(len(sub)))), np.asarray(sub.labels, dtype=np.int64))
    fp_parts = [dataset.fingerprint(), split_seed, list(budget.split), budget.train_per_class,
                budget.val_per_class, budget.test_per_class]
    return SplitData(*out["train"], *out["val"], *out["test"], n_classes=int(dataset.n_classes),
                     identity=fp_parts)


def input_size_for(backbone, budget: Budget) -> tuple[int, int]:
    """The backbone's own input size (a zoo entry's ``input_size`` override included), capped at
    ``budget.max_input_side`` for size-flexible bodies."""
    h, w = (int(v) for v in backbone.config.input_size)
    cap = budget.max_input_side
    if cap is None or getattr(backbone, "fixed_input_size", False) or max(h, w) <= cap:
        return (h, w)
    scale = cap / max(h, w)
    return (max(16, round(h * scale)), max(16, round(w * scale)))


def to_input(x_u8: np.ndarray, size, device, channels_last: bool = False) -> torch.Tensor:
    from zoorank.compute.extract import to_model_input

    return to_model_input(torch.from_numpy(np.ascontiguousarray(x_u8)).to(device), size,
                          channels_last=channels_last)


def accuracies(pred: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[float, float]:
    """(top-1, mean per-class accuracy) in [0, 1]; classes absent from ``y`` are skipped."""
    if len(y) == 0:
        return float("nan"), float("nan")
    top1 = float(np.mean(pred == y))
    per = [np.mean(pred[y == c] == c) for c in range(n_classes) if np.any(y == c)]
    return top1, float(np.mean(per))


@torch.no_grad()
def batched(fn, x_u8: np.ndarray, size, device, *, batch_size=128, amp=False, channels_last=False):
    """``fn`` (a module, in eval mode) over ``x_u8`` in batches -> float32 CPU tensor."""
    outs = []
    for i in range(0, len(x_u8), batch_size):
        x = to_input(x_u8[i:i + batch_size], size, device, channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            outs.append(fn(x).float().cpu())
    return torch.cat(outs) if outs else torch.zeros(0)


def predict(model, x_u8: np.ndarray, size, device, *, batch_size=128, amp=False,
            channels_last=False) -> np.ndarray:
    """Arg-max class of ``model`` on each image (eval mode)."""
    model.eval()
    logits = batched(model, x_u8, size, device, batch_size=batch_size, amp=amp, channels_last=channels_last)
    return logits.argmax(1).numpy() if len(logits) else np.zeros(0, dtype=np.int64)
