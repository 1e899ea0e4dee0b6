"""The project's import graph runs one way: no cycles, and the planes keep apart.

Every import counts: module level, under ``if TYPE_CHECKING:`` and inside functions,
since a module that imports another one back, however lazily, cannot be read or changed
alone. The graph is built from the source with ``ast``; an edge goes from a module to the
module it names. ``from pkg import name`` is an edge to ``pkg.name`` when that is a
module of ours, else to ``pkg``. A dotted import is an edge to the module it names, not to
the parent packages Python runs on the way (grimp and import-linter count the same way):
a package ``__init__`` that imports its submodules is fine as long as they do not import
the ``__init__`` back.

DESIGN.md's planes: ``signaling`` and ``media`` never import each other, and neither
imports ``control``, which composes them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("media", "signaling", "control")

# Cycles tolerated while one is being broken, as sorted module tuples; keep it empty.
ALLOWED_CYCLES: set[tuple[str, ...]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imported(module: str, is_package: bool, tree: ast.AST, known: set[str]) -> Iterator[str]:
    """Every module of ours (or name under our packages) that ``module`` imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield submodule if submodule in known else target


def import_graph() -> dict[str, set[str]]:
    """Module name → the names it imports under our packages."""
    sources = _sources()
    # Compiled kernels are modules too: `from media.dsp import _dtmf_kernel` names one.
    known = set(sources) | {
        _module_name(path) for package in PACKAGES for path in (ROOT / package).rglob("*.pyx")
    }
    graph: dict[str, set[str]] = {}
    for module, path in sources.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        imported = _imported(module, path.name == "__init__.py", tree, known)
        graph[module] = {name for name in imported if name.split(".")[0] in PACKAGES}
    return graph


def strongly_connected(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative; returns every component, singletons included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in graph:
                    continue
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Components of more than one module, and modules that import themselves."""
    found = [sorted(c) for c in strongly_connected(graph) if len(c) > 1]
    found += [[module] for module, imported in graph.items() if module in imported]
    return sorted(found)


def _edges_within(graph: Mapping[str, set[str]], members: list[str]) -> list[str]:
    return [f"{a} -> {b}" for a in members for b in sorted(graph[a]) if b in members]


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = [c for c in cycles(graph) if tuple(c) not in ALLOWED_CYCLES]
    report = "\n".join(
        f"{' <-> '.join(c)}:\n    " + "\n    ".join(_edges_within(graph, c)) for c in found
    )
    assert not found, f"import cycles:\n{report}"


# DESIGN.md, "Three planes": control composes signaling and media, which never meet.
FORBIDDEN = {
    "signaling": {"media", "control"},
    "media": {"signaling", "control"},
}


def crossings(graph: Mapping[str, set[str]]) -> list[str]:
    """Imports from one plane into a plane it must not know."""
    return sorted(
        f"{module} -> {name}"
        for module, imported in graph.items()
        for name in imported
        if name.split(".")[0] in FORBIDDEN.get(module.split(".")[0], set())
    )


def test_planes_import_one_way() -> None:
    found = crossings(import_graph())
    assert not found, "imports across planes:\n" + "\n".join(found)


def test_graph_sees_every_kind_of_import() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "from .c import X\n"
        "from .. import d\n"
        "import pkg.e\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.sub import f\n"
        "def g() -> None:\n"
        "    from pkg.sub.h import Y\n"
    )
    known = {"pkg.sub.a", "pkg.sub.b", "pkg.sub.c", "pkg.d", "pkg.e", "pkg.sub.h"}
    imported = set(_imported("pkg.sub.a", False, ast.parse(source), known))
    assert imported - {"typing"} == {
        "pkg.sub.b", "pkg.sub.c", "pkg.d", "pkg.e", "pkg.sub", "pkg.sub.h",
    }


def test_cycles_found_in_a_toy_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d", "a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"], ["d"]]


def test_crossings_found_in_a_toy_graph() -> None:
    graph = {
        "media.a": {"media.b", "signaling.c"},
        "signaling.c": {"control.d"},
        "control.d": {"media.a", "signaling.c"},
    }
    assert crossings(graph) == ["media.a -> signaling.c", "signaling.c -> control.d"]
