"""PEP 562 lazy re-exports for a package's ``__init__``: a name is imported from its submodule
on first access, so importing one light submodule (``zoorank.zoo.spec``) does not load the heavy
ones (torch) that the package's public API also offers."""
from __future__ import annotations

import importlib
from typing import Callable, Mapping


def lazy_exports(package: str, where: Mapping[str, str], public: list[str]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``where`` maps each exported name to the
    relative module defining it (``".spec"``); the first access imports it and stores the value
    in the package namespace, so later look-ups are plain attribute reads."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        try:
            module = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(public))

    return __getattr__, __dir__
