"""Registers the ``webhook`` sink type with meepo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meepo_core import hookimpl

from .webhook_sink import WebhookSink


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("webhook", WebhookSink)
