"""Model specs (what the user asks for) and model configs (what a loaded backbone expects).

A *zoo file* is a YAML list. Each item is either a built-in model id::

    - efficientnet_lite0

or a mapping with an ``id`` and a ``source``::

    - id: my_resnet
      source: torchvision:resnet18
      weights_path: ./r18.pth          # relative to this file
    - id: imagenet_resnet
      source: torchvision:resnet18
      weights: IMAGENET1K_V1          # only if cached in the torch hub folder (offline)
    - id: my_vit
      source: timm:vit_tiny_patch16_224
      checkpoint: ./vit_tiny.pth
    - id: my_scripted
      source: local
      path: ./model.pt                 # state dict or TorchScript file
      arch: torchvision:resnet18

Fields are checked strictly: an unknown field, a field that does not apply to the source or
a value of the wrong type is a ``ValueError`` naming the file, the line and the field.
Nothing from YAML is ever evaluated: sources map onto a fixed set of constructors.

Paths are resolved relative to the zoo file. A relative path may never leave the *root*
(by default the zoo file's folder); absolute paths and symlinks that leave it are accepted
only with ``allow_absolute_paths=True``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ModelConfig",
    "ModelSpec",
    "SOURCE_FIELDS",
    "parse_zoo",
    "spec_from_mapping",
    "resolve_spec_path",
    "DEFAULT_ZOO_PATH",
]

DEFAULT_ZOO_PATH = Path(__file__).with_name("default.yaml")

COLOURS = ("rgb", "grey", "bgr")


@dataclass(frozen=True)
class ModelConfig:
    """What a backbone expects and gives. Normalisation happens *inside* the backbone.

    The backbone receives float RGB in [0, 1] at ``input_size`` (H, W) and computes
    ``((convert(x) * pixel_scale) - mean) / std`` where ``convert`` turns RGB into the
    model's ``colour`` ("rgb", "bgr" or "grey"); ``mean``/``std`` are in the scaled units
    and in the model's channel order (1 value for "grey").
    """

    model_id: str
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    colour: str
    pixel_scale: float
    feature_dim: int
    source_task: str | None
    num_source_outputs: int | None
    licence: str
    source: str

    def __post_init__(self) -> None:
        if self.colour not in COLOURS:
            raise ValueError(f"colour must be one of {COLOURS}, got {self.colour!r}")
        n = 1 if self.colour == "grey" else 3
        if len(self.mean) != n or len(self.std) != n:
            raise ValueError(
                f"{self.model_id}: colour {self.colour!r} needs {n} mean/std values, "
                f"got mean={self.mean} std={self.std}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"{self.model_id}: std must be positive, got {self.std}")
        if len(self.input_size) != 2 or any(int(v) <= 0 for v in self.input_size):
            raise ValueError(f"{self.model_id}: input_size must be (H, W) > 0, "
                             f"got {self.input_size}")
        if self.pixel_scale <= 0:
            raise ValueError(f"{self.model_id}: pixel_scale must be positive")
        if self.feature_dim <= 0:
            raise ValueError(f"{self.model_id}: feature_dim must be positive")


# Fields each source accepts besides the common ones (id, source, description + overrides).
_OVERRIDES = ("input_size", "mean", "std", "colour", "pixel_scale", "source_task", "licence",
              "num_classes")
SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "builtin": ("input_size",),  # e.g. a cheaper resolution for a size-flexible CNN
    "torchvision": ("weights", "weights_path") + _OVERRIDES,
    "timm": ("checkpoint",) + _OVERRIDES,
    "local": ("path", "arch", "format") + _OVERRIDES,
}
_COMMON = ("id", "source", "description", "source_accuracy", "parameters")
#: descriptive fields (the model card, zoorank.zoo.cards): they never enter a model's identity
CARD_FIELDS = ("source_accuracy", "parameters")
_ALL_FIELDS = set(_COMMON).union(*SOURCE_FIELDS.values())


@dataclass(frozen=True)
class ModelSpec:
    """One entry of a zoo: a built-in id or a general source with its weights.

    ``source``: ``"builtin"``, ``"torchvision:<arch>"``, ``"timm:<name>"`` or ``"local"``.
    ``base_dir``: folder relative paths are resolved against (the zoo file's folder).
    ``origin``: ``"<file>:<line>"`` for error messages.
    """

    id: str
    source: str = "builtin"
    description: str | None = None
    weights: str | None = None
    weights_path: str | None = None
    checkpoint: str | None = None
    path: str | None = None
    arch: str | None = None
    format: str = "auto"
    num_classes: int | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    colour: str | None = None
    pixel_scale: float | None = None
    source_task: str | None = None
    licence: str | None = None
    source_accuracy: float | None = None    # top-1 on its source task in [0, 1] (model card)
    parameters: int | None = None            # parameter count (model card)
    base_dir: str | None = field(default=None, compare=False)
    origin: str | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        """``builtin`` / ``torchvision`` / ``timm`` / ``local``."""
        return self.source.split(":", 1)[0]

    @property
    def file_field(self) -> str | None:
        """Name of the field holding this spec's weight file, if any."""
        for name in ("weights_path", "checkpoint", "path"):
            if getattr(self, name) is not None:
                return name
        return None

    def where(self) -> str:
        return f" ({self.origin})" if self.origin else ""


def _err(origin: str, fld: str | None, msg: str) -> ValueError:
    return ValueError(f"{origin}: {'field ' + repr(fld) + ': ' if fld else ''}{msg}")


def _check_type(value: Any, fld: str, origin: str) -> Any:
    """Coerce and check one field value; return the normalised value."""
    str_fields = {"id", "source", "description", "weights", "weights_path", "checkpoint", "path",
                  "arch", "format", "colour", "source_task", "licence"}
    if fld in str_fields:
        if fld == "source_task" and value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise _err(origin, fld, f"expected a non-empty string, got {value!r}")
        return value.strip()
    if fld == "source_accuracy":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise _err(origin, fld, f"expected a top-1 accuracy as a fraction in [0, 1], got {value!r}")
        return float(value)
    if fld in ("num_classes", "parameters"):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _err(origin, fld, f"expected a positive integer, got {value!r}")
        return value
    if fld == "pixel_scale":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise _err(origin, fld, f"expected a positive number, got {value!r}")
        return float(value)
    if fld == "input_size":
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        if not ok:
            raise _err(origin, fld, f"expected an int or [H, W] of positive ints, got {value!r}")
        return (int(value[0]), int(value[1]))
    if fld in ("mean", "std"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if (not isinstance(value, (list, tuple)) or len(value) not in (1, 3)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise _err(origin, fld, f"expected 1 or 3 numbers, got {value!r}")
        return tuple(float(v) for v in value)
    raise _err(origin, fld, "unknown field")  # pragma: no cover - guarded by caller


def spec_from_mapping(
    item: dict[str, Any] | str,
    *,
    base_dir: str | os.PathLike | None = None,
    origin: str = "<spec>",
    lines: dict[str, int] | None = None,
) -> ModelSpec:
    """Build a checked :class:`ModelSpec` from a YAML/JSON-like mapping (or a bare id).

    ``lines`` maps field names to line numbers, for error messages.
    """
    base = str(base_dir) if base_dir is not None else None
    if isinstance(item, str):
        if not item.strip():
            raise _err(origin, None, "empty model id")
        return ModelSpec(id=item.strip(), base_dir=base, origin=origin)
    if not isinstance(item, dict):
        raise _err(origin, None, "a zoo entry must be a model id or a mapping, "
                   f"got {type(item).__name__}")
    lines = lines or {}

    def at(fld: str) -> str:
        if fld in lines and ":" in origin:
            return origin.rsplit(":", 1)[0] + f":{lines[fld]}"
        return origin

    for key in item:
        if not isinstance(key, str) or key not in _ALL_FIELDS:
            raise _err(at(str(key)), str(key),
                       f"unknown field; allowed fields: {', '.join(sorted(_ALL_FIELDS))}")
    if "id" not in item:
        raise _err(origin, "id", "missing required field")
    values = {k: _check_type(v, k, at(k)) for k, v in item.items()}
    source = values.get("source", "builtin")
    kind = source.split(":", 1)[0]
    if kind not in SOURCE_FIELDS:
        raise _err(at("source"), "source",
                   f"unknown source {source!r}; expected 'builtin', 'torchvision:<arch>', "
                   "'timm:<name>' or 'local'")
    if kind in ("torchvision", "timm") and not source.partition(":")[2].strip():
        raise _err(at("source"), "source", f"{kind} source needs a name, e.g. '{kind}:resnet18'")
    if kind in ("builtin", "local") and ":" in source:
        raise _err(at("source"), "source", f"source {kind!r} takes no ':<name>' suffix")
    allowed = set(_COMMON) | set(SOURCE_FIELDS[kind])
    for key in values:
        if key not in allowed:
            raise _err(at(key), key, f"does not apply to source {kind!r}; allowed: "
                       f"{', '.join(sorted(allowed))}")
    if kind == "torchvision":
        if ("weights" in values) == ("weights_path" in values):
            raise _err(origin, "weights", "torchvision sources need exactly one of 'weights' "
                       "(a torchvision enum name such as IMAGENET1K_V1, or 'random') and "
                       "'weights_path' (a local state dict)")
    if kind == "timm" and "checkpoint" not in values:
        raise _err(origin, "checkpoint", "timm sources need 'checkpoint: <local file>' "
                   "(no model hub offline)")
    if kind == "local":
        for req in ("path", "arch"):
            if req not in values:
                raise _err(origin, req, "missing required field for source 'local'")
        arch_kind = values["arch"].split(":", 1)[0]
        if arch_kind not in ("torchvision", "timm") or ":" not in values["arch"]:
            raise _err(at("arch"), "arch", f"expected 'torchvision:<arch>' or 'timm:<name>', "
                       f"got {values['arch']!r}")
        if values.get("format", "auto") not in ("auto", "state_dict", "torchscript"):
            raise _err(at("format"), "format", "expected 'auto', 'state_dict' or 'torchscript'")
    if "colour" in values and values["colour"] not in COLOURS:
        raise _err(at("colour"), "colour", f"expected one of {COLOURS}, got {values['colour']!r}")
    return ModelSpec(**values, base_dir=base, origin=origin)


# ----------------------------------------------------------------------------- YAML


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_object(node, deep=True)


def parse_zoo(text: str, *, filename: str = "<zoo>", base_dir: str | os.PathLike | None = None
              ) -> list[ModelSpec]:
    """Parse zoo YAML text into specs. Errors name ``filename`` and the line."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else "?"
        raise ValueError(f"{filename}:{line}: malformed YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{filename}: malformed YAML: {exc}") from exc
    finally:
        loader.dispose()
    if root is None:
        return []
    if isinstance(root, yaml.MappingNode):
        # Also accept {models: [...]}
        pairs = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
        if set(pairs) != {"models"}:
            raise ValueError(f"{filename}:{root.start_mark.line + 1}: a zoo file is a YAML list "
                             "of model entries (or a mapping with the single key 'models')")
        root = pairs["models"]
    if not isinstance(root, yaml.SequenceNode):
        raise ValueError(f"{filename}:{root.start_mark.line + 1}: a zoo file is a YAML list of "
                         "model entries")
    specs: list[ModelSpec] = []
    seen: dict[str, int] = {}
    for item in root.value:
        line = item.start_mark.line + 1
        origin = f"{filename}:{line}"
        lines: dict[str, int] = {}
        if isinstance(item, yaml.ScalarNode):
            value = _construct(loader, item)
            if not isinstance(value, str):
                raise ValueError(f"{origin}: a zoo entry must be a model id or a mapping, "
                                 f"got {value!r}")
        elif isinstance(item, yaml.MappingNode):
            value = {}
            for key_node, val_node in item.value:
                key = _construct(loader, key_node)
                kline = key_node.start_mark.line + 1
                if key in value:
                    raise ValueError(f"{filename}:{kline}: field {key!r}: given twice")
                try:
                    value[key] = _construct(loader, val_node)
                except yaml.YAMLError as exc:
                    raise ValueError(f"{filename}:{kline}: field {key!r}: {exc}") from exc
                lines[str(key)] = kline
        else:
            raise ValueError(f"{origin}: a zoo entry must be a model id or a mapping")
        spec = spec_from_mapping(value, base_dir=base_dir, origin=origin, lines=lines)
        if spec.id in seen:
            raise ValueError(f"{origin}: field 'id': duplicate model id {spec.id!r} "
                             f"(first at line {seen[spec.id]})")
        seen[spec.id] = line
        specs.append(spec)
    return specs


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def resolve_path(raw: str, *, base_dir: str | os.PathLike | None, root: str | os.PathLike | None,
                 allow_absolute_paths: bool, what: str = "path") -> Path:
    """Resolve ``raw`` against ``base_dir`` and refuse escapes from ``root``.

    - relative paths (after normalising ``..``) must stay inside ``root`` - always;
    - absolute paths, and relative ones whose symlinks lead outside ``root``, are accepted
      only when ``allow_absolute_paths`` is true.
    ``root`` defaults to ``base_dir``; ``base_dir`` defaults to the working directory.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    base = Path(os.path.abspath(base))
    root_p = Path(os.path.abspath(root)) if root is not None else base
    p = Path(os.path.expanduser(raw)) if raw.startswith("~") else Path(raw)
    if p.is_absolute():
        candidate = Path(os.path.normpath(p))
        if not allow_absolute_paths and not _is_within(candidate, root_p):
            raise ValueError(f"{what} {raw!r} is absolute and outside the root {root_p}; "
                             "absolute paths are not allowed here (allow_absolute_paths=False)")
    else:
        candidate = Path(os.path.normpath(base / p))
        if not _is_within(candidate, root_p):
            raise ValueError(f"{what} {raw!r} escapes the root {root_p} (resolves to {candidate}); "
                             "use an absolute path with allow_absolute_paths=True instead")
    if not allow_absolute_paths:
        real = Path(os.path.realpath(candidate))
        real_root = Path(os.path.realpath(root_p))
        if not _is_within(real, real_root):
            raise ValueError(f"{what} {raw!r} leads outside the root {real_root} through a "
                             f"symlink (to {real}); not allowed (allow_absolute_paths=False)")
    return candidate


def resolve_spec_path(spec: ModelSpec, *, root: str | os.PathLike | None = None,
                      allow_absolute_paths: bool = True) -> Path:
    """The absolute weight-file path of ``spec`` (``weights_path``, ``checkpoint`` or ``path``)."""
    fld = spec.file_field
    if fld is None:
        raise ValueError(f"model {spec.id!r}{spec.where()} names no weight file")
    try:
        return resolve_path(getattr(spec, fld), base_dir=spec.base_dir, root=root,
                            allow_absolute_paths=allow_absolute_paths, what=f"field {fld!r}:")
    except ValueError as exc:
        raise ValueError(f"{spec.origin or 'model ' + repr(spec.id)}: {exc}") from None


def with_overrides(config: ModelConfig, spec: ModelSpec) -> ModelConfig:
    """Apply the spec's preprocessing/metadata overrides to a derived config."""
    changes = {}
    for name in ("input_size", "mean", "std", "colour", "pixel_scale", "licence"):
        v = getattr(spec, name)
        if v is not None:
            changes[name] = v
    if spec.source_task is not None:
        changes["source_task"] = spec.source_task
    if not changes:
        return config
    try:
        return replace(config, **changes)
    except ValueError as exc:
        raise ValueError(f"{spec.origin or 'model ' + repr(spec.id)}: {exc}") from None

