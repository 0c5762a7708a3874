"""With every in-repo plugin installed, the packages that meepo-core's extras name for
unknown types (see :mod:`meepo_core.providers`) match what the plugins really register, both
ways."""

from __future__ import annotations

import tomllib
from pathlib import Path

from meepo_core.plugins import KINDS, load_registry
from meepo_core.providers import _installed_providers, provider_of

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
    # every type an in-repo plugin registers names its package ...
    assert {name: provider_of(name) for name in registered} == registered
    # ... and every extra is an in-repo plugin, named after a type or type family it
    # registers (or it registers no type at all, as meepo-serve's commands)
    extras = _installed_providers()
    assert set(extras.values()) == packages
    for extra, package in extras.items():
        named = {name for name in registered if extra in (name, name.split("-", 1)[0])}
        assert named or package not in registered.values(), extra
        assert all(registered[name] == package for name in named), extra
