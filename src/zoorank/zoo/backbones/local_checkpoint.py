"""``source: local``: a state-dict or TorchScript file with a declared architecture.

``arch: torchvision:<arch>`` or ``arch: timm:<name>``; ``format: auto | state_dict |
torchscript`` (auto: TorchScript archives are recognised by their ``code/`` and
``constants.pkl`` entries). State dicts load with ``weights_only=True``; of a TorchScript file
only the tensors are used (``torch.jit.load(...).state_dict()``), poured into the declared
architecture, so features are computed by zoorank's own, known code path.
"""
from __future__ import annotations

from pathlib import Path

from ..backbone import Backbone
from ..spec import ModelSpec


def build_local(spec: ModelSpec, path: Path) -> Backbone:
    assert spec.arch is not None
    kind, _, name = spec.arch.partition(":")
    if kind == "torchvision":
        from .torchvision_models import build_torchvision

        return build_torchvision(spec, name, weights_file=path, fmt=spec.format)
    if kind == "timm":
        from .timm_models import build_timm

        return build_timm(spec, name, weights_file=path, fmt=spec.format)
    raise ValueError(f"{spec.origin or spec.id}: field 'arch': expected 'torchvision:<arch>' or "
                     f"'timm:<name>', got {spec.arch!r}")
