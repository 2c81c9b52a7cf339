"""Extract ranking features at the fine-tuning resolution of the shipped CPU ground truth.

The shipped ground truth fine-tunes size-flexible backbones at max side 32 px (Budget.max_input_side);
ranking them on 224-px features would compare two different networks-at-a-resolution. This patch makes
zoorank.pipeline.load_backbone return those backbones with config.input_size capped the same way (the
model identity includes the config, so these features get their own cache keys)."""
import dataclasses
import zoorank.pipeline as pl
from zoorank.finetune import Budget, input_size_for

SIDE = 32
_orig = pl.load_backbone


def load_backbone(spec, device="cpu"):
    b = _orig(spec, device)
    size = input_size_for(b, Budget(max_input_side=SIDE))
    if tuple(size) != tuple(b.config.input_size):
        b.config = dataclasses.replace(b.config, input_size=tuple(size))
    return b


pl.load_backbone = load_backbone
