"""The layers of the ``vwmerge`` package, as the tree shows them, hold in the code.

Read from the source with :mod:`ast` (nothing is imported to find the imports): an import counts
wherever it stands, at module level or inside a function, because an import moved into a
function to dodge a cycle is still a cycle. Only imports under ``if TYPE_CHECKING:`` (annotations)
are left out of the cycle check; the layering check counts them too.

Layers, bottom to top: ``format`` (the file format), ``contract`` (hooks and the types they
see), ``model`` (model files and workspaces), ``engine`` (merging), ``cli``. ``errors`` and ``_log``
(the library's logger) are shared by all. A module imports only from its own layer, the layers
below, and those two. Plugins, the
built-in ones included, import only the public surface: ``vwmerge`` and ``vwmerge.plugin`` (and
each other).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import vwmerge
import vwmerge.plugins

PACKAGE = Path(vwmerge.__file__).resolve().parent
PLUGINS = Path(vwmerge.plugins.__file__).resolve().parent
EXAMPLE_PLUGIN = Path(__file__).resolve().parent / "plugin_pkg" / "src"
LAYERS = ("format", "contract", "model", "engine", "cli")
SHARED = ("vwmerge.errors", "vwmerge._log")
PUBLIC = ("vwmerge", "vwmerge.plugin")


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file, for every module of the package rooted at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([package, *parts])] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(name: str, path: Path, *, annotations: bool) -> Iterator[str]:
    """Every module name an import in ``path`` names (``from m import x`` names m and m.x)."""
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[str]:
        if isinstance(node, ast.If) and _is_type_checking(node) and not annotations:
            for child in node.orelse:
                yield from visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = here
            for _ in range(max(node.level - 1, 0)):
                base = base.rpartition(".")[0]
            module = (base + ("." + node.module if node.module else "")) if node.level else (node.module or "")
            yield module
            for alias in node.names:
                yield f"{module}.{alias.name}"
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    yield from visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))


def _edges(mods: dict[str, Path], name: str, *, annotations: bool) -> set[str]:
    """The package's modules that module ``name`` imports (longest matching module name)."""
    out = set()
    for target in _imported(name, mods[name], annotations=annotations):
        while target and target not in mods:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


MODULES = _modules(PACKAGE, "vwmerge")
PACKAGE_INITS = {m for m, p in MODULES.items() if p.name == "__init__.py"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in LAYERS else module


def test_the_finder_sees_the_layers_and_their_modules() -> None:
    """The checks below would pass vacuously on a wrong path or an empty package."""
    for layer in LAYERS:
        assert f"vwmerge.{layer}" in PACKAGE_INITS
        assert sum(_layer(m) == layer for m in MODULES) >= 3, layer
    assert "vwmerge.engine.rowsums" in _edges(MODULES, "vwmerge.engine.partial", annotations=True) | _edges(
        MODULES, "vwmerge.engine.executors", annotations=True
    )
    # a function-level import is found
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_no_import_cycles() -> None:
    """As ../shared/tools/import_cycles.py counts them: edges into and out of package
    ``__init__`` modules (which only re-export, or hold a docstring) are left out."""
    graph = {
        m: {t for t in _edges(MODULES, m, annotations=False) if t not in PACKAGE_INITS}
        for m in MODULES
        if m not in PACKAGE_INITS
    }
    assert _cycles(graph) == []


def test_layer_packages_only_describe_their_layer() -> None:
    """A layer's ``__init__`` imports nothing, so importing one module of a layer loads no other."""
    for module in PACKAGE_INITS - {"vwmerge"}:
        assert not list(_imported(module, MODULES[module], annotations=True)), module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) in LAYERS or m in SHARED))
def test_a_layer_imports_only_its_own_and_the_layers_below(module: str) -> None:
    layer = _layer(module)
    allowed = set(LAYERS[: LAYERS.index(layer) + 1]) if layer in LAYERS else set()
    wrong = sorted(
        target
        for target in _edges(MODULES, module, annotations=True)
        if target not in SHARED and target != "vwmerge" and _layer(target) not in allowed
    )
    assert not wrong, f"{module} ({layer}) imports {wrong}"
    if layer != "cli":  # only the command line reads the package's own __init__ (its version)
        assert "vwmerge" not in _edges(MODULES, module, annotations=True), module


def _plugin_files() -> list[Path]:
    return sorted(PLUGINS.glob("*.py")) + sorted(EXAMPLE_PLUGIN.rglob("*.py"))


@pytest.mark.parametrize("path", _plugin_files(), ids=lambda p: p.name if p.parent == PLUGINS else p.parent.name)
def test_plugins_import_only_the_public_surface(path: Path) -> None:
    name = "vwmerge.plugins." + path.stem if path.parent == PLUGINS else path.parent.name
    used = {m for m in _imported(name, path, annotations=True) if m == "vwmerge" or m.startswith("vwmerge.")}
    modules = {m.rpartition(".")[0] if m.rpartition(".")[0] in (*PUBLIC, "vwmerge.plugins") else m for m in used}
    internal = sorted(m for m in modules if m not in PUBLIC and not m.startswith("vwmerge.plugins"))
    assert not internal, f"{path.name} imports {internal}; import from vwmerge.plugin instead"


def test_the_plugin_surface_names_every_hook_type() -> None:
    """Every class a hook specification names in its signature is in vwmerge.plugin."""
    import vwmerge.plugin
    from vwmerge.contract import hookspecs

    named = set()
    for name, spec in vars(hookspecs).items():
        if name.startswith("vwmerge_") and callable(spec):
            for annotation in spec.__annotations__.values():
                named |= {n.id for n in ast.walk(ast.parse(str(annotation))) if isinstance(n, ast.Name)}
    types = named - {"Any", "Sequence", "None", "dict", "str", "float", "int"}
    assert types == {"ReductionSpec", "StackEntry", "SectionIO", "ModelWeights", "MergeContext", "PartialContext"}
    assert types <= set(vwmerge.plugin.__all__)
    for name in vwmerge.plugin.__all__:
        assert getattr(vwmerge.plugin, name) is not None
