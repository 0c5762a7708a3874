"""The pipeline examples in the READMEs and the docs site are valid configs: every ```toml
block that declares a whole pipeline (``[tool.meepo.pipelines.NAME]`` with its ``source``) is
parsed and fully validated, without contacting any server.
Fragments showing one option are left out.

An example is checked where every plugin it uses is installed (each plugin's test session
runs this file); one that names a type no in-repo plugin provides fails everywhere.

The options tables (``<!-- options: KIND TYPE -->``) are those ``docs/option_tables.py``
generates from the types' ``OPTIONS`` declarations, and every type an in-repo plugin
registers has one."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from meepo_core.config import MeepoConfig, load_config
from meepo_core.option_docs import OPTION_KINDS, declared_types
from meepo_core.pipeline import build_pipeline
from meepo_core.plugins import KINDS, registry
from meepo_core.providers import provider_of

ROOT = Path(__file__).parents[1]
READMES = [ROOT / "README.md", *sorted(ROOT.glob("plugins/*/README.md")),
           *sorted(ROOT.glob("docs/**/*.md"))]
BLOCK = re.compile(r"```toml\n(.*?)```", re.DOTALL)


def type_names(config: MeepoConfig) -> set[str]:
    """The source and sink types and the store URL schemes the config's pipelines use."""
    names = set()
    for pipeline in config.pipelines.values():
        for part in [pipeline.get("source"), *pipeline.get("sinks", [])]:
            if isinstance(part, dict) and isinstance(part.get("type"), str):
                names.add(part["type"])
        for key in ("checkpoint", "dead_letter"):
            if isinstance(pipeline.get(key), str):
                names.add(pipeline[key].split(":", 1)[0])
    return names


def installed(name: str) -> bool:
    return any(name in registry().types[kind] for kind in KINDS)


def examples() -> list[tuple[str, str]]:
    found = []
    for readme in READMES:
        for index, block in enumerate(BLOCK.findall(readme.read_text())):
            if "[tool.meepo.pipelines." in block and re.search(r"^source\s*=", block, re.M):
                found.append((f"{readme.relative_to(ROOT)}#{index}", block))
    return found


@pytest.mark.parametrize(("where", "block"), examples(), ids=[w for w, _ in examples()])
def test_readme_pipeline_example_is_valid(
    where: str, block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", block)):
        monkeypatch.setenv(name, "example")
    config_file = tmp_path / "pyproject.toml"
    config_file.write_text(block)
    config = load_config(config_file)
    assert config.pipelines, where
    missing = {
        provider for name in type_names(config)
        if (provider := provider_of(name)) is not None and not installed(name)
    }
    if missing:
        pytest.skip(f"needs {', '.join(sorted(missing))}, not installed in this session")
    for name in config.pipelines:
        build_pipeline(config, name, registry())


def option_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("option_tables",
                                                  ROOT / "docs" / "option_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLES = option_tables()


def documented() -> list[tuple[str, str, str, tuple[str, ...], str]]:
    """``(where, kind, name, keys, table)`` of every options table in the docs."""
    return [(f"{path.relative_to(ROOT)} {kind} {name}{' ' if keys else ''}{' '.join(keys)}",
             kind, name, keys, body)
            for path in TABLES.FILES
            for kind, name, keys, body in TABLES.blocks(path.read_text(encoding="utf-8"))]


@pytest.mark.parametrize(("where", "kind", "name", "keys", "body"), documented(),
                         ids=[d[0] for d in documented()])
def test_options_table_is_generated_from_the_declaration(
    where: str, kind: str, name: str, keys: tuple[str, ...], body: str
) -> None:
    expected = TABLES.declared_table(kind, name, keys)
    if expected is None and kind == "table":
        pytest.skip(f"{name.partition(':')[0]} is not installed in this session")
    if expected is None:  # an example's plugin is installed in the example's session only
        provider = provider_of(name)
        assert provider is not None or where.startswith("examples/"), (
            f"{where}: no in-repo plugin provides {kind} {name!r}")
        pytest.skip(f"needs {provider or name}, not installed in this session")
    assert body == expected, (
        f"{where}: the table differs from the type's OPTIONS; run python docs/option_tables.py")


def test_every_in_repo_type_has_an_options_table() -> None:
    """Every option of every type an in-repo plugin registers is in a table (one table of
    all its options, or several by topic)."""
    shown: dict[tuple[str, str], set[str]] = {}
    for _, kind, name, keys, _ in documented():
        options = TABLES.declared_options(kind, name) or ()
        shown.setdefault((kind, name), set()).update(keys or [o.name for o in options])
    reg = registry()
    missing = []
    for kind in OPTION_KINDS:
        for name, registration in reg.types[kind].items():
            if not reg.plugins[registration.plugin].package.startswith("meepo-"):
                continue
            if not next(t for t in declared_types(reg, name) if t.kind == kind).declared:
                missing.append(f"{kind} {name} (declares no OPTIONS)")
                continue
            if (kind, name) not in shown:
                missing.append(f"{kind} {name}")
                continue
            declared = {o.name for o in TABLES.declared_options(kind, name) or ()}
            missing += [f"{kind} {name}: {key}" for key in sorted(declared - shown[(kind, name)])]
    assert not missing, ("no <!-- options: KIND TYPE [KEY ...] --> table in the type's README "
                         f"or page shows: {', '.join(missing)}")
