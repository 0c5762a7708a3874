"""``meepo es ...`` subcommands, added to the meepo CLI through ``meepo_add_commands``."""

from __future__ import annotations

import click

from meepo_core.config import load_config
from meepo_core.plugins import registry as load_cached_registry

from .backfill import Backfill

EPILOG = """\b
Examples:
  meepo es backfill orders                     every table of pipeline orders
  meepo es backfill orders --table shop.orders
  meepo es backfill orders --chunk-size 5000 --sink 1
"""


@click.group(name="es")
def es_group() -> None:
    """Elasticsearch sink tools (meepo-es)."""


@es_group.command(epilog=EPILOG)
@click.argument("pipeline")
@click.option("--table", "tables", multiple=True, metavar="SCHEMA.TABLE",
              help="Backfill only this table (repeatable); default: all the source's tables.")
@click.option("--sink", "sink", type=int, default=None, metavar="N",
              help="Which sinks[N] to backfill when the pipeline has several elasticsearch sinks.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Rows read per pk-ordered query.")
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar.")
@click.pass_context
def backfill(ctx: click.Context, pipeline: str, tables: tuple[str, ...], sink: int | None,
             chunk_size: int, no_progress: bool) -> None:
    """Copy PIPELINE's tables into new indices NAME_vN, catch up from the binlog position
    recorded at the start, then point alias NAME at them atomically.

    The running pipeline keeps writing through the alias NAME the whole time; it may keep
    running. Rows are read straight from the source database (its dsn and tables) in
    primary-key order.
    """
    state = ctx.find_root().obj
    if state is not None and hasattr(state, "config"):
        config, registry = state.config, state.registry
    else:
        config = load_config(None)
        registry = load_cached_registry(config.plugins)
    report = Backfill(config, pipeline, registry, tables=tables, sink=sink,
                      chunk_size=chunk_size, progress=not no_progress).run()
    rows = sum(report.rows.values())
    targets = ", ".join(f"{alias} -> {index}" for alias, index in report.targets.items())
    click.echo(f"meepo es backfill: {pipeline}: {rows} rows from {len(report.rows)} tables; "
               f"{targets}; {report.dead_letters} dead letters; caught up to {report.caught_up}",
               err=True)
