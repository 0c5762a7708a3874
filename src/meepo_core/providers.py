"""Which package provides a type that is not installed, for the "install it with" hint.

The core keeps no list of plugins: meepo-core's own distribution metadata does. Its
pyproject declares one extra per first-party type family (``kafka = ["meepo-kafka"]``);
the installed metadata carries them as ``Requires-Dist: meepo-kafka; extra == "kafka"``,
read here. A type is provided by the extra of its own name or, failing that, of its part
before the first ``-`` (``redis-stream``: ``redis``). Without installed metadata (a bare
source checkout) no type has a known provider and the hint is left out.
"""

from __future__ import annotations

import functools
import re
from importlib import metadata

#: ``meepo-kafka; extra == "kafka"`` (and the forms other build tools write).
_EXTRA_REQUIREMENT = re.compile(
    r"""^\s*(?P<package>[A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;\s*extra\s*==\s*["'](?P<extra>[^"']+)["']\s*$"""
)


def providers_from(requirements: list[str] | None, core: str = "meepo-core") -> dict[str, str]:
    """``{extra: package}`` for every requirement of an extra that names a meepo package
    other than ``core`` (the ``test`` extra's pytest, say, is not a provider)."""
    found: dict[str, str] = {}
    for requirement in requirements or ():
        match = _EXTRA_REQUIREMENT.match(requirement)
        if match is None:
            continue
        package = match["package"]
        if package.lower().startswith("meepo-") and package.lower() != core:
            found[match["extra"]] = package
    return found


@functools.cache
def _installed_providers() -> dict[str, str]:
    try:
        requirements = metadata.metadata("meepo-core").get_all("Requires-Dist")
    except metadata.PackageNotFoundError:
        return {}
    return providers_from(requirements)


def provider_of(type_name: str, providers: dict[str, str] | None = None) -> str | None:
    """The package that provides ``type_name`` (any kind: source, sink, transform, store
    URL scheme), or None when no first-party package is known to; ``providers`` defaults
    to meepo-core's installed extras (see the module docstring)."""
    known = _installed_providers() if providers is None else providers
    return known.get(type_name) or known.get(type_name.split("-", 1)[0])
