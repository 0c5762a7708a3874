"""With every in-repo plugin installed, the table that names the package to install for an
unknown type matches what the plugins really register, both ways."""

from __future__ import annotations

import tomllib
from pathlib import Path

from meepo_core.plugins import KINDS, KNOWN_PROVIDERS, load_registry

ROOT = Path(__file__).parents[2]


def in_repo_packages() -> set[str]:
    return {
        tomllib.loads(path.read_text())["project"]["name"]
        for path in ROOT.glob("plugins/*/pyproject.toml")
    }


def test_known_providers_match_the_in_repo_plugins() -> None:
    registry = load_registry()
    packages = in_repo_packages()
    registered = {
        name: info.package
        for info in registry.plugins.values()
        if info.package in packages
        for kind in KINDS
        for name in info.provides.get(kind, [])
    }
    assert {info.package for info in registry.plugins.values()} >= packages, "install them all"
    assert registered == KNOWN_PROVIDERS
