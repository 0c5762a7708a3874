"""Plugins use only the public API: every name they import from meepo-core comes from
``meepo_core`` itself (its ``__all__``), or from ``meepo_core.testing`` in their tests. The
benchmarks are held to the same rule: they embed meepo as any program would."""

from __future__ import annotations

import ast
from pathlib import Path

import meepo_core
import meepo_core.testing

ROOT = Path(__file__).parents[1]
SOURCES = sorted([*ROOT.glob("plugins/*/src/**/*.py"), *ROOT.glob("examples/*/src/**/*.py")])
BENCH = sorted(ROOT.glob("bench/*.py"))


def core_imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` for each name ``path`` imports from a meepo_core module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("meepo_core"):
            found += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "*") for alias in node.names
                      if alias.name.startswith("meepo_core.")]
    return found


def test_plugins_import_only_public_names() -> None:
    assert SOURCES, "no plugin sources found"
    private = [
        f"{path.relative_to(ROOT)}: {module}.{name}"
        for path in SOURCES
        for module, name in core_imports(path)
        if module != "meepo_core" or name not in meepo_core.__all__
    ]
    assert private == []


def test_every_public_name_exists() -> None:
    assert all(hasattr(meepo_core, name) for name in meepo_core.__all__)


def test_benchmarks_import_only_public_names() -> None:
    assert BENCH, "no bench scripts found"
    public = {"meepo_core": meepo_core.__all__, "meepo_core.testing": meepo_core.testing.__all__}
    private = [
        f"{path.relative_to(ROOT)}: {module}.{name}"
        for path in BENCH
        for module, name in core_imports(path)
        if name not in public.get(module, ())
    ]
    assert private == []
