"""Registers the ``sqlalchemy-outbox`` and ``sqlalchemy-session`` sources and the ``sql``
sink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meepo_core import hookimpl

from .outbox_source import OutboxSource
from .session_pipeline import SessionPipelineSource
from .sql_sink import SqlSink


@hookimpl
def meepo_register_sources(register: Callable[[str, Any], None]) -> None:
    register("sqlalchemy-outbox", OutboxSource)
    register("sqlalchemy-session", SessionPipelineSource)


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("sql", SqlSink)
