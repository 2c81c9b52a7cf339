"""``timm:<name>`` with a local ``checkpoint`` (no model hub: this runs offline).

The architecture comes from ``timm.create_model(name, pretrained=False, num_classes=N)``
(``N`` from the spec or read off the checkpoint's classifier), the weights from the
checkpoint (``weights_only=True`` or the tensors of a TorchScript archive), strictly checked.
Features: ``reset_classifier(0)`` makes ``model(x)`` return the pooled pre-logits features
(timm's documented feature-extraction route); the removed classifier is the source head.
Preprocessing defaults: the model's ``pretrained_cfg`` (input size, mean, std).
Checked against huggingface/pytorch-image-models ``timm/models/_builder.py`` and
``timm/models/resnet.py`` (``reset_classifier``, ``forward_head``).
"""
from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ..backbone import Backbone
from ..spec import ModelConfig, ModelSpec, with_overrides
from ..weights import load_state_dict_checked, package_dir
from ..normalisation import IMAGENET_MEAN, IMAGENET_STD
from .torchvision_models import read_state_dict

PIP = "timm==1.0.31"


def _timm():
    package_dir("timm", PIP, no_deps=False)
    import timm

    return timm


def check_name(name: str) -> None:
    timm = _timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown timm architecture {name!r}{hint}")


def _classifier_key(name: str) -> str | None:
    timm = _timm()
    try:
        cfg = timm.models.get_pretrained_cfg(name) or {}
        cfg = cfg if isinstance(cfg, dict) else cfg.to_dict()
    except Exception:  # pragma: no cover - timm internals vary between versions
        cfg = {}
    clf = cfg.get("classifier")
    return clf if isinstance(clf, str) else None


def infer_num_classes(name: str, sd: dict[str, torch.Tensor]) -> int | None:
    clf = _classifier_key(name)
    if clf and f"{clf}.weight" in sd:
        return int(sd[f"{clf}.weight"].shape[0])
    if clf and not any(k.startswith(clf + ".") for k in sd):
        return 0  # checkpoint saved without a classifier
    return None


class _TimmBody(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def make_model(name: str, **kwargs) -> nn.Module:
    check_name(name)
    return _timm().create_model(name, pretrained=False, **kwargs)


def build_timm(spec: ModelSpec, name: str, *, weights_file: Path, fmt: str = "auto") -> Backbone:
    check_name(name)  # cheap errors first
    sd = read_state_dict(weights_file, fmt)
    n = spec.num_classes if spec.num_classes is not None else infer_num_classes(name, sd)
    kwargs = {} if n is None else {"num_classes": n}
    model = make_model(name, **kwargs)
    load_state_dict_checked(model, sd, weights_file)
    model.eval()
    n_out = int(getattr(model, "num_classes", 0) or 0)
    head = model.get_classifier() if n_out > 0 else None
    model.reset_classifier(0)
    feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = tuple(cfg.get("input_size", (3, 224, 224)))[-2:]
    mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in cfg.get("std", IMAGENET_STD))
    config = ModelConfig(
        model_id=spec.id, input_size=(int(size[0]), int(size[1])), mean=mean, std=std,
        colour="rgb", pixel_scale=1.0, feature_dim=feature_dim, source_task=None,
        num_source_outputs=(2 if n_out == 1 else n_out) if head is not None else None,
        licence="unknown (user-supplied checkpoint)",
        source=f"timm:{name} checkpoint={weights_file}",
    )
    config = with_overrides(config, spec)
    if head is not None and not isinstance(head, nn.Module):  # pragma: no cover
        head = None
    activation = None if head is None else ("sigmoid" if n_out == 1 else "softmax")
    if head is None:
        config = replace(config, num_source_outputs=None)
    return Backbone(config, _TimmBody(model), head, activation, weights_file=weights_file)
