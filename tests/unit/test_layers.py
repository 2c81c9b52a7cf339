"""The package's import graph: no cycle between modules, and imports point down the layers.

The graph is read from the source (AST), not by importing: every ``import`` / ``from ... import``
of a module, at module level AND inside functions (a lazy import is still a dependency), relative
ones resolved. Imports under ``if TYPE_CHECKING:`` are left out: they never run, and annotations
may name a type of a higher layer. ``from pkg import name`` counts as an import of the submodule
``pkg.name`` when that is a module, else of ``pkg`` (its ``__init__``). docs/architecture.md states
the same rules in prose.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "zoorank"

#: layer -> the layers it may import (besides itself). Bottom to top.
LAYER_RULES: dict[str, set[str]] = {
    "support": set(),                                   # imports no other zoorank module
    "config": {"support"},
    "metrics": {"support"},                             # pure science
    "zoo": {"support"},
    "data": {"support"},
    "compute": {"metrics", "zoo", "data", "support"},   # torch work on one model: no storage, no Prefect
    "storage": {"metrics", "zoo", "data", "support", "config"},
    "reporting": {"storage", "metrics", "zoo", "data", "support", "config"},   # may use storage, not the pipeline
    "pipeline": {"compute", "storage", "metrics", "zoo", "data", "support", "config"},
    "orchestration": {"pipeline", "compute", "storage", "reporting", "metrics", "zoo", "data", "support", "config"},
    "api": {"orchestration", "pipeline", "compute", "storage", "reporting", "metrics", "zoo", "data", "support",
            "config"},
    "cli": {"api", "orchestration", "pipeline", "compute", "storage", "reporting", "metrics", "zoo", "data",
            "support", "config"},
    "top": {"api"},                                     # zoorank/__init__.py: the public facade
}

#: layer -> third-party packages it must never import. Prefect belongs to orchestration alone.
FORBIDDEN_PACKAGES: dict[str, set[str]] = {
    layer: {"prefect"} | ({"zarr", "mlflow"} if layer in ("metrics", "compute", "support") else set())
    for layer in LAYER_RULES if layer != "orchestration"
}

#: Known violations, each with its reason and owner. This list may only shrink: an edge listed here
#: that no longer exists fails the test too, so that it is removed from the list.
ALLOWED_EDGES: dict[tuple[str, str], str] = {}


# ------------------------------------------------------------------ reading the graph
def _modules(src: Path = SRC, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) blocks."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def read_imports(src: Path = SRC, package: str = PACKAGE) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(internal, external)``: module -> the package modules it imports; module -> the top-level
    names of the third-party / standard packages it imports."""
    mods = _modules(src, package)
    internal: dict[str, set[str]] = {m: set() for m in mods}
    external: dict[str, set[str]] = {m: set() for m in mods}
    for mod, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        skip = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    where = ".".join(base + ([node.module] if node.module else []))
                else:
                    where = node.module or ""
                targets = [f"{where}.{a.name}" if f"{where}.{a.name}" in mods else where for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] != package:
                    external[mod].add(target.split(".")[0])
                    continue
                while target not in mods and "." in target:  # zoorank.x.name -> zoorank.x
                    target = target.rsplit(".", 1)[0]
                if target != mod:
                    internal[mod].add(target)
    return internal, external


def layer_of(module: str) -> str:
    parts = module.split(".")
    return "top" if len(parts) == 1 else parts[1]


# ------------------------------------------------------------------ the checks (pure: also run on synthetic graphs)
def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # iterative enough for this graph's depth (< 50)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def layer_violations(graph: dict[str, set[str]], rules: dict[str, set[str]] = LAYER_RULES,
                     allowed: dict[tuple[str, str], str] | None = None) -> list[str]:
    """Every edge from a module to a module of a layer its own layer may not import, unless allowed;
    plus modules in no known layer."""
    allowed = ALLOWED_EDGES if allowed is None else allowed
    out = []
    for mod, targets in sorted(graph.items()):
        src_layer = layer_of(mod)
        if src_layer not in rules:
            out.append(f"{mod}: layer {src_layer!r} is not in LAYER_RULES")
            continue
        for t in sorted(targets):
            dst = layer_of(t)
            if dst != src_layer and dst not in rules[src_layer] and (mod, t) not in allowed:
                out.append(f"{mod} ({src_layer}) imports {t} ({dst})")
    return out


def forbidden_packages(external: dict[str, set[str]],
                       forbidden: dict[str, set[str]] = FORBIDDEN_PACKAGES) -> list[str]:
    return [f"{mod} ({layer_of(mod)}) imports {pkg}" for mod, pkgs in sorted(external.items())
            for pkg in sorted(pkgs & forbidden.get(layer_of(mod), set()))]


# ------------------------------------------------------------------ the package
@pytest.fixture(scope="module")
def imports():
    return read_imports()


def test_the_package_is_read(imports):
    internal, _ = imports
    assert {"zoorank.api", "zoorank.storage.arrays.store", "zoorank.metrics.registry"} <= set(internal)
    # a function-level import is an edge (api imports the rank flow inside a function)
    assert any(t.startswith("zoorank.orchestration") for t in internal["zoorank.api"])


def test_no_import_cycle_between_modules(imports):
    internal, _ = imports
    assert import_cycles(internal) == []


def test_imports_point_down_the_layers(imports):
    internal, _ = imports
    assert layer_violations(internal) == []


def test_the_allow_list_only_shrinks(imports):
    internal, _ = imports
    stale = [edge for edge in ALLOWED_EDGES if edge[1] not in internal.get(edge[0], set())]
    assert stale == [], f"remove these fixed edges from ALLOWED_EDGES: {stale}"


def test_only_orchestration_imports_prefect_and_the_science_no_zarr_or_mlflow(imports):
    _, external = imports
    assert forbidden_packages(external) == []


def test_only_api_and_cli_import_orchestration(imports):
    internal, _ = imports
    users = {layer_of(m) for m, ts in internal.items() for t in ts
             if layer_of(t) == "orchestration" and layer_of(m) != "orchestration"}
    assert users <= {"api", "cli"}


# ------------------------------------------------------------------ the checks catch planted violations
def test_a_planted_cycle_is_found():
    graph = {"zoorank.a.x": {"zoorank.a.y"}, "zoorank.a.y": {"zoorank.a.z"}, "zoorank.a.z": {"zoorank.a.x"},
             "zoorank.a.w": {"zoorank.a.x"}, "zoorank.a.v": {"zoorank.a.v"}}
    assert import_cycles(graph) == [["zoorank.a.v"], ["zoorank.a.x", "zoorank.a.y", "zoorank.a.z"]]
    assert import_cycles({"zoorank.a.x": {"zoorank.a.y"}, "zoorank.a.y": set()}) == []


def test_planted_layer_violations_are_found():
    graph = {
        "zoorank.metrics.logme": {"zoorank.storage.arrays"},          # science reaching up
        "zoorank.reporting.html": {"zoorank.pipeline.stages", "zoorank.storage.keys"},   # one bad, one fine
        "zoorank.pipeline.stages": {"zoorank.orchestration.tasks"},   # only api and cli may
        "zoorank.support.faults": {"zoorank.config"},                 # support imports nothing
        "zoorank.newlayer.thing": set(),
        "zoorank.api": {"zoorank.orchestration.flows.rank"},          # allowed
    }
    assert layer_violations(graph, allowed={}) == [
        "zoorank.metrics.logme (metrics) imports zoorank.storage.arrays (storage)",
        "zoorank.newlayer.thing: layer 'newlayer' is not in LAYER_RULES",
        "zoorank.pipeline.stages (pipeline) imports zoorank.orchestration.tasks (orchestration)",
        "zoorank.reporting.html (reporting) imports zoorank.pipeline.stages (pipeline)",
        "zoorank.support.faults (support) imports zoorank.config (config)",
    ]
    assert layer_violations({"zoorank.metrics.logme": {"zoorank.storage.arrays"}},
                            allowed={("zoorank.metrics.logme", "zoorank.storage.arrays"): "why"}) == []
    assert forbidden_packages({"zoorank.metrics.logme": {"numpy", "mlflow"}, "zoorank.pipeline.x": {"prefect"},
                               "zoorank.orchestration.tasks": {"prefect"}}) == [
        "zoorank.metrics.logme (metrics) imports mlflow", "zoorank.pipeline.x (pipeline) imports prefect"]


def test_the_reader_sees_lazy_relative_and_type_checking_imports(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "metrics").mkdir(parents=True)
    (pkg / "storage").mkdir()
    for f in ("__init__.py", "metrics/__init__.py", "storage/__init__.py", "storage/keys.py"):
        (pkg / f).write_text("")
    (pkg / "metrics" / "logme.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import other\n"
        "if TYPE_CHECKING:\n    from zoorank.storage import keys\n"
        "def f():\n    import mlflow\n    from zoorank.storage.keys import content_key\n")
    (pkg / "metrics" / "other.py").write_text("from .logme import f\n")
    internal, external = read_imports(tmp_path, PACKAGE)
    assert internal["zoorank.metrics.logme"] == {"zoorank.metrics.other", "zoorank.storage.keys"}
    assert external["zoorank.metrics.logme"] == {"typing", "mlflow"}
    assert import_cycles(internal) == [["zoorank.metrics.logme", "zoorank.metrics.other"]]
    assert layer_violations(internal, allowed={}) == [
        "zoorank.metrics.logme (metrics) imports zoorank.storage.keys (storage)"]
    assert forbidden_packages(external) == ["zoorank.metrics.logme (metrics) imports mlflow"]
