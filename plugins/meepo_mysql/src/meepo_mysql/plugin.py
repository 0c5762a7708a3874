"""Registers the ``mysql`` source type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meepo_core import hookimpl

from .source import MySQLSource


@hookimpl
def meepo_register_sources(register: Callable[[str, Any], None]) -> None:
    register("mysql", MySQLSource)
