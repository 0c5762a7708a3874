"""``meepo es backfill PIPELINE``: copy tables' current rows into fresh indices through the
source's snapshot capability, catch up, then swap the aliases atomically.

Steps, for each alias NAME that the pipeline's tables map to:

1. create ``NAME_vN`` (N one above the highest existing) with the table's mappings/settings;
2. run the pipeline on the side (its own replica identity, no checkpoint of its own, only
   this sink, writing into ``NAME_vN``) from the source's current position, with a snapshot
   of the tables: chunks of current rows interleave with the change stream (see
   :mod:`meepo_core.snapshots`), each copied row carrying the sequence of its chunk's high
   watermark as external version, so a later change always wins;
3. swap: one ``_aliases`` call moves NAME to ``NAME_vN`` (the live pipeline writes through
   NAME, so from here on it writes to the new index);
4. catch up again from where step 2 ended, covering what the live pipeline wrote to the
   old index between steps 2 and 3. Reordering between this and the live pipeline is
   harmless thanks to external versions (keep ``index.gc_deletes`` above the time this
   takes, so deletes keep their tombstones; see the README).

Rows come from the source plugin (``mysql``, ``sqlalchemy-outbox``, ...), never from a
connection of meepo-es's own: meepo-es reads no other plugin's config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from meepo_core import (
    ConfigError,
    MemoryCheckpointStore,
    Pipeline,
    Position,
    Runner,
    RunStats,
    SnapshotTable,
    load_pipeline,
)

from .client import make_client
from .elasticsearch_sink import ElasticsearchSink
from .indices import create_index, next_versioned_name, swap_alias


@dataclass
class BackfillReport:
    targets: dict[str, str]  # alias -> new index
    rows: dict[str, int] = field(default_factory=dict)  # schema.table -> rows copied
    previous: dict[str, list[str]] = field(default_factory=dict)  # alias -> old indices
    caught_up: Position | None = None
    dead_letters: int = 0


class Backfill:
    """One backfill run of pipeline ``name`` of ``config`` (None: the nearest config
    file); see the module docstring for the steps."""

    def __init__(
        self,
        name: str,
        config: str | Path | None = None,
        *,
        tables: tuple[str, ...] = (),
        sink: int | None = None,
        chunk_size: int = 1000,
        echo: Callable[[str], None] = lambda line: click.echo(line, err=True),
    ) -> None:
        self.name = name
        self.config = config
        self.only_tables = tables
        self.chunk_size = chunk_size
        self.echo = echo
        pipeline = load_pipeline(name, config)  # validates everything
        self.path = pipeline.key_path
        self.sink_index = self._pick_sink(pipeline, sink)
        if not pipeline.source.supports_snapshots:
            raise ConfigError(f"{self.path}.source", "the backfill copies rows through the "
                              "source's snapshot capability, which this source type lacks "
                              "(mysql, sqlalchemy-outbox and postgres have it)")

    def _pick_sink(self, pipeline: Pipeline, sink: int | None) -> int:
        found = [i for i, (_, s) in enumerate(pipeline.sinks) if isinstance(s, ElasticsearchSink)]
        path = f"{self.path}.sinks"
        if not found:
            raise ConfigError(path, "no elasticsearch sink in this pipeline to backfill")
        if sink is None:
            if len(found) > 1:
                raise ConfigError(path, f"several elasticsearch sinks ({found}); pick one "
                                  "with --sink N")
            return found[0]
        if sink not in found:
            raise ConfigError(f"{path}[{sink}]", f"is not an elasticsearch sink; those are {found}")
        return sink

    def _side_run(self, targets: dict[str, str]) -> tuple[Pipeline, ElasticsearchSink]:
        """The pipeline reduced to this one sink, writing into ``targets``, with its own
        identity and no checkpoint (the live pipeline keeps its own)."""
        pipeline = load_pipeline(self.name, self.config)
        label, sink = pipeline.sinks[self.sink_index]
        assert isinstance(sink, ElasticsearchSink)
        sink.builder.redirect = dict(targets)
        settings = dataclasses.replace(
            pipeline.settings, snapshot="never", snapshot_chunk_size=self.chunk_size,
            metrics_port=None,
        )
        side = dataclasses.replace(pipeline, sinks=[(label, sink)], settings=settings,
                                   checkpoints=MemoryCheckpointStore(), purpose="backfill")
        return side, sink

    def run(self) -> BackfillReport:
        side, sink = self._side_run({})
        tables = self._tables(side)
        aliases: dict[str, list[SnapshotTable]] = {}
        for table in tables:
            aliases.setdefault(sink.settings.index_name(table.schema, table.table), []).append(
                table)
        client = make_client(sink.settings.client)
        try:
            targets = {alias: next_versioned_name(client, alias) for alias in aliases}
            for alias, members in aliases.items():
                rule = sink.settings.rule(members[0].schema, members[0].table)
                create_index(client, targets[alias], rule)
                self.echo(f"meepo es backfill: created {targets[alias]} for alias {alias}")
            report = BackfillReport(targets=targets)
            side, sink = self._side_run(targets)
            start = side.source.current_position()
            copied = Runner(side).run(once=True, start=start,
                                      snapshot=[t.qualified for t in tables])
            report.rows = {t.qualified: copied.snapshot_rows.get(t.qualified, 0) for t in tables}
            report.dead_letters = copied.dead_letters
            self._caught_up(copied, start)
            for alias, target in targets.items():
                report.previous[alias] = swap_alias(client, alias, target)
                self.echo(f"meepo es backfill: alias {alias} -> {target} (was "
                          f"{', '.join(report.previous[alias]) or 'nothing'})")
        finally:
            client.close()
        side, sink = self._side_run(targets)
        after_swap = copied.position if copied.position is not None else start
        again = Runner(side).run(once=True, start=after_swap)
        report.dead_letters += again.dead_letters
        report.caught_up = self._caught_up(again, after_swap)
        return report

    def _tables(self, side: Pipeline) -> list[SnapshotTable]:
        """The tables to copy: all the pipeline's, or the ``--table`` ones plus every table
        that shares an alias with one of them (else the swap would drop its documents)."""
        tables = side.source.snapshot_tables(None)
        if not self.only_tables:
            return tables
        names = [t.qualified for t in tables]
        for wanted in self.only_tables:
            if wanted not in names:
                raise ConfigError("--table", f"{wanted} is not among the pipeline's tables: "
                                  f"{', '.join(names)}")
        _, sink = self._side_run({})
        index = {t.qualified: sink.settings.index_name(t.schema, t.table) for t in tables}
        chosen = {index[name] for name in self.only_tables}
        for name in names:
            if index[name] in chosen and name not in self.only_tables:
                raise ConfigError("--table", f"{name} also writes to {index[name]!r}; add "
                                  "--table for it too, or the swap would drop its documents")
        return [t for t in tables if t.qualified in self.only_tables]

    def _caught_up(self, stats: RunStats, start: Position | None) -> Position | None:
        where = stats.position if stats.position is not None else start
        self.echo(f"meepo es backfill: {self.name}: {stats.events} events applied, caught up "
                  f"to {where}")
        return where
