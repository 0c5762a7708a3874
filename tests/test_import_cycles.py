"""meepo_core's modules import each other without a cycle: the core reads bottom-up (events
and options at the bottom, the runner and the CLI on top), and a module that needs one
above it is a sign that a job sits in the wrong module. The same holds in every in-repo
plugin package and the testkit, where installed.

Every import counts, also one inside a function (a lazy import hides a cycle, it does not
remove it); only imports under ``if TYPE_CHECKING:`` are left out, as they never run.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import meepo_core

ROOT = Path(meepo_core.__file__).parent
#: The other packages of this repository (checked where installed: a core-only test run
#: has none of them).
PACKAGES = ("meepo_es", "meepo_kafka", "meepo_mysql", "meepo_postgres", "meepo_redis",
            "meepo_serve", "meepo_sqlalchemy", "meepo_testkit", "meepo_webhook")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The modules of ``modules`` that ``path`` imports when it runs (any depth but
    TYPE_CHECKING)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # ``from . import x`` and ``from .pkg import module`` import modules too
            found.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    # a module of a package runs after its package's __init__ began: no edge back to it
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {target for target in found if target in modules and target != name} - ancestors


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(path, root) for path in paths}
    graph = {module_name(path, root): imports(path, modules, root) for path in paths}
    # importing a.b.c runs a/b/__init__ first (a's own modules excepted, see imports())
    for name, edges in graph.items():
        for target in list(edges):
            parts = target.split(".")
            edges.update(parent for parent in (".".join(parts[:i]) for i in range(2, len(parts)))
                         if not name.startswith(parent + "."))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_import_graph_is_read_from_the_source() -> None:
    graph = import_graph()
    assert "meepo_core.events" in graph["meepo_core.batching"]
    assert "meepo_core.runner" in graph["meepo_core.cli"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_meepo_core_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_plugin_package_has_an_import_cycle(package: str) -> None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    assert cycles(import_graph(root)) == []
