"""No import cycle among jepsenlike's own modules.

Every ``.py`` file of the installed package tree (``jepsenlike/`` and the
directories installed as ``jepsenlike.models``, ``jepsenlike.nemesis`` and
``jepsenlike.checkers``) is parsed with :mod:`ast`; every import statement
counts, those inside functions included (a deferred import that dodges a
cycle at import time is still a cycle in the design). Only the bodies of
``if TYPE_CHECKING:`` blocks are left out. An import names a module of the
project when the module (or, for ``from X import Y``, ``X.Y`` or else ``X``)
is one of the files found; the resulting graph must be acyclic.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import networkx as nx

PACKAGES = ("jepsenlike", "jepsenlike.models", "jepsenlike.nemesis", "jepsenlike.checkers")

# fixed on the histio branch: edn imports history's pairer and history reads .edn files.
ALLOWED_EDGES = {("jepsenlike.edn", "jepsenlike.history"), ("jepsenlike.history", "jepsenlike.edn")}


def package_files() -> dict[str, Path]:
    """Module name -> file, for every module of the installed package tree."""
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        spec = importlib.util.find_spec(pkg)
        assert spec is not None and spec.submodule_search_locations, pkg
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            parts = [p for p in path.relative_to(root).with_suffix("").parts if p != "__init__"]
            if "__pycache__" in parts:
                continue
            out.setdefault(".".join([pkg, *parts]), path)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> list[tuple[str, int]]:
    """Every ``(module, line)`` of ``modules`` the tree imports; TYPE_CHECKING blocks skipped.

    ``import a.b`` names ``a.b``; ``from a import b`` names ``a.b`` when that is a
    module, else ``a``; relative imports are resolved against ``module``.
    """
    found: list[tuple[str, int]] = []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    found.append((sub, node.lineno))
                elif target in modules:
                    found.append((target, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> nx.DiGraph:
    files = package_files()
    modules = set(files)
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, line in imports_of(tree, module, path.name == "__init__.py", modules):
            if name != module and not graph.has_edge(module, name):
                graph.add_edge(module, name, line=line)
    return graph


def test_the_walk_sees_the_whole_tree_and_deferred_imports():
    files = package_files()
    for name in ("jepsenlike.runner", "jepsenlike.models.raft.core", "jepsenlike.nemesis.package",
                 "jepsenlike.checkers.linearizable", "jepsenlike.backends.docker.backend"):
        assert name in files, name
    # An import inside a function counts; one under TYPE_CHECKING does not.
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a.b\n"
                     "def f():\n    from . import c\n    import d\n")
    assert {n for n, _ in imports_of(tree, "p.m", False, {"a.b", "p", "p.c", "d"})} == {"p.c", "d"}


def test_a_cycle_is_found_when_there_is_one():
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a")])
    assert _cycles(g) == [["a", "b", "c"]]


def _cycles(graph: nx.DiGraph) -> list[list[str]]:
    out = []
    for scc in nx.strongly_connected_components(graph):
        if len(scc) > 1:
            cycle = nx.find_cycle(graph.subgraph(scc))
            out.append([u for u, _ in cycle])
    return sorted(out)


def test_no_import_cycle_among_the_projects_modules():
    graph = import_graph()
    graph.remove_edges_from(ALLOWED_EDGES)
    cycles = _cycles(graph)
    lines = []
    for cycle in cycles:
        hops = [f"{a} (line {graph.edges[a, b]['line']})" for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True)]
        lines.append(" -> ".join(hops) + f" -> {cycle[0]}")
    assert not cycles, "import cycles:\n" + "\n".join(lines)
