"""Registers the ``mysql`` source type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meepo_core import hookimpl


@hookimpl
def meepo_register_sources(register: Callable[[str, Any], None]) -> None:
    register("mysql", "meepo_mysql.mysql_source:MySQLSource")
