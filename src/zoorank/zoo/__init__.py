"""Backbones: a model id or spec -> ``Backbone`` (an ``nn.Module`` giving pooled penultimate
features of [0, 1] RGB input, with normalisation inside, and source-task probabilities).

Public API::

    load_model(model_id_or_spec, *, device="cpu", allow_absolute_paths=True, root=None)
    list_models() -> list[str]          # built-in ids (the default zoo)
    get_config(model_id) -> ModelConfig # without loading weights for built-ins
    load_zoo(path_or_"default") -> list[ModelSpec]
"""
from .backbone import Backbone
from .registry import BUILTINS, get_config, list_models, load_model
from .spec import ModelConfig, ModelSpec, load_zoo, parse_zoo, spec_from_mapping
from .weights import MissingPackageError

__all__ = [
    "Backbone",
    "BUILTINS",
    "MissingPackageError",
    "ModelConfig",
    "ModelSpec",
    "get_config",
    "list_models",
    "load_model",
    "load_zoo",
    "parse_zoo",
    "spec_from_mapping",
]
