"""The plugin's hooks: the ``meepo serve`` command."""

from __future__ import annotations

import click

from meepo_core import hookimpl


@hookimpl
def meepo_add_commands(cli: click.Group) -> None:
    from .cli import serve  # imported on first CLI use only

    cli.add_command(serve)
