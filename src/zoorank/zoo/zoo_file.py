"""Read a zoo file: parse it (:func:`zoorank.zoo.spec.parse_zoo`), check built-in ids against the
registry and resolve every weight path, so mistakes surface with a line number before anything
heavy is loaded. Here rather than in spec.py so that spec (the data types) needs no registry and the
registry (which builds on spec) is imported one way only."""
from __future__ import annotations

import os
from pathlib import Path

from .registry import BUILTINS, unknown_model_error
from .spec import DEFAULT_ZOO_PATH, ModelSpec, parse_zoo, resolve_spec_path

__all__ = ["load_zoo"]


def load_zoo(path: str | os.PathLike = "default", *, root: str | os.PathLike | None = None,
             allow_absolute_paths: bool = True, check_ids: bool = True) -> list[ModelSpec]:
    """Read a zoo YAML file (or ``"default"``) into a list of :class:`ModelSpec`.

    Built-in ids are checked against the registry and every weight path is checked against
    ``root`` (default: the zoo file's folder) right away, so mistakes surface with a line
    number before anything heavy is loaded.
    """
    p = DEFAULT_ZOO_PATH if str(path) == "default" else Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"zoo file not found: {p}") from None
    base = p.resolve().parent
    specs = parse_zoo(text, filename=str(p), base_dir=base)
    if check_ids:
        for s in specs:
            if s.kind == "builtin" and s.id not in BUILTINS:
                raise ValueError(f"{s.origin}: field 'id': {unknown_model_error(s.id)}")
    for s in specs:
        if s.file_field is not None:
            resolve_spec_path(s, root=root, allow_absolute_paths=allow_absolute_paths)
    return specs
