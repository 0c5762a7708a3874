"""Package attributes imported on first use, so that loading a plugin stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each public name from the
    submodule ``homes[name]`` names the first time it is asked for. Plugins use it so that
    loading their registration (as every ``meepo`` command does) imports no client library::

        _HOMES = {"MySQLSource": "mysql_source"}
        __all__ = sorted(_HOMES)
        __getattr__ = lazy_exports(__name__, _HOMES)
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    return __getattr__
