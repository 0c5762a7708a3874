"""Registers the ``sqlalchemy-outbox`` and ``sqlalchemy-session`` sources and the ``sql``
sink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meepo_core import hookimpl


@hookimpl
def meepo_register_sources(register: Callable[[str, Any], None]) -> None:
    register("sqlalchemy-outbox", "meepo_sqlalchemy.sqlalchemy_outbox_source:OutboxSource")
    register(
        "sqlalchemy-session", "meepo_sqlalchemy.sqlalchemy_session_source:SessionPipelineSource"
    )


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("sql", "meepo_sqlalchemy.sql_sink:SqlSink")
