"""BatchNorm running statistics re-estimated on the target images (label-free), then frozen.

Pretrained running statistics describe the source images at the source resolution; at another
resolution and on other images they are wrong, and a network evaluated with them can sit at
chance (ft-v1's failure, ``docs/ground_truth.md``). This is the "AdaBN" / precise-BN recipe
(Li et al., "Revisiting Batch Normalization for Practical Domain Adaptation", 2016; Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021, section 3): reset each BatchNorm layer's running mean and
variance, run one pass over the training images with ``momentum=None`` (PyTorch's cumulative
moving average: the running statistics become the plain average of the per-batch statistics), then
restore the momentum. Parameters are untouched; only the buffers ``running_mean``,
``running_var`` and ``num_batches_tracked`` change.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import to_input


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def reestimate_bn(model: nn.Module, x_u8: np.ndarray, size, device, *, batch_size: int = 64,
                  channels_last: bool = False) -> int:
    """Recompute every BatchNorm layer's running statistics over ``x_u8`` (one pass, cumulative
    average of the per-batch statistics); every other module stays in eval mode (no dropout).
    Leaves the model in eval mode and returns the number of BatchNorm layers updated."""
    layers = batchnorm_layers(model)
    if not layers or len(x_u8) == 0:
        model.eval()
        return 0
    saved = [m.momentum for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for i in range(0, len(x_u8), batch_size):
            chunk = x_u8[i:i + batch_size]
            if len(chunk) < 2 and i > 0:   # a 1-image batch has no variance; skip a remainder of one
                continue
            model(to_input(chunk, size, device, channels_last))
    finally:
        for m, mom in zip(layers, saved):
            m.momentum = mom
        model.eval()
    return len(layers)


def set_train_mode(model: nn.Module, bn: str) -> None:
    """Training mode for fine-tuning; BatchNorm layers stay in eval mode (frozen running
    statistics) unless ``bn == "train"``."""
    model.train()
    if bn != "train":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
