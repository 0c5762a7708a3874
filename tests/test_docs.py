"""The pipeline examples in the READMEs and the docs site are valid configs: every ```toml
block that declares a whole pipeline (``[tool.meepo.pipelines.NAME]`` with its ``source``) is
parsed and fully validated, without contacting any server.
Fragments showing one option are left out.

An example is checked where every plugin it uses is installed (each plugin's test session
runs this file); one that names a type no in-repo plugin provides fails everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meepo_core.config import MeepoConfig, load_config
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
