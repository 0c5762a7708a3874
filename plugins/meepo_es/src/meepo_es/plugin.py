"""meepo-es registration: the ``elasticsearch`` sink and the ``meepo es`` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from meepo_core import hookimpl


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("elasticsearch", "meepo_es.elasticsearch_sink:ElasticsearchSink")


@hookimpl
def meepo_add_commands(cli: click.Group) -> None:
    from .cli import es_group  # imported on first CLI use only

    cli.add_command(es_group)
