"""``meepo es ...`` subcommands, added to the meepo CLI through ``meepo_add_commands``."""

from __future__ import annotations

import click

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
              help="Rows per snapshot chunk (one key-ordered query).")
@click.pass_context
def backfill(ctx: click.Context, pipeline: str, tables: tuple[str, ...], sink: int | None,
             chunk_size: int) -> None:
    """Copy PIPELINE's tables into new indices NAME_vN through the source's snapshots,
    catch up with the changes made meanwhile, then point alias NAME at them atomically.

    The running pipeline keeps writing through the alias NAME the whole time; it may keep
    running. Progress is logged while the tables are copied.
    """
    from .backfill import Backfill  # here: every meepo command loads this module

    config = ctx.find_root().params.get("config_path")
    report = Backfill(pipeline, config, tables=tables, sink=sink, chunk_size=chunk_size).run()
    rows = sum(report.rows.values())
    targets = ", ".join(f"{alias} -> {index}" for alias, index in report.targets.items())
    click.echo(f"meepo es backfill: {pipeline}: {rows} rows from {len(report.rows)} tables; "
               f"{targets}; {report.dead_letters} dead letters; caught up to {report.caught_up}",
               err=True)
