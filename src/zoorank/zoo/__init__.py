"""Backbones: a model id or spec -> ``Backbone`` (an ``nn.Module`` giving pooled penultimate
features of [0, 1] RGB input, with normalisation inside, and source-task probabilities).

Public API::

    load_model(model_id_or_spec, *, device="cpu", allow_absolute_paths=True, root=None)
    list_models() -> list[str]          # built-in ids (the default zoo)
    get_config(model_id) -> ModelConfig # without loading weights for built-ins
    load_zoo(path_or_"default") -> list[ModelSpec]
"""
from __future__ import annotations

from zoorank.support.lazy_exports import lazy_exports

# Names -> the submodule defining them, imported on first use (PEP 562 module __getattr__), so
# that ``zoorank.zoo.spec`` / ``zoorank.zoo.registry`` (model configs, zoo files) load without
# torch: only building a backbone (``Backbone``, ``load_model``, ``MissingPackageError``) brings it in.
_LAZY = {
    "Backbone": ".backbone",
    "BUILTINS": ".registry", "get_config": ".registry", "list_models": ".registry", "load_model": ".registry",
    "ModelConfig": ".spec", "ModelSpec": ".spec", "load_zoo": ".zoo_file", "parse_zoo": ".spec",
    "spec_from_mapping": ".spec",
    "MissingPackageError": ".weights",
}

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
