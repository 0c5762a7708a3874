"""``meepo es backfill PIPELINE``: copy tables' current rows into fresh indices, catch up
from the binlog, then swap the aliases atomically.

Steps, for each alias NAME that the pipeline's tables map to:

1. record the binlog position P0 (``SHOW MASTER STATUS``) *before* reading anything;
2. create ``NAME_vN`` (N one above the highest existing) with the table's mappings/settings;
3. read every row in pk-ordered chunks and index it into ``NAME_vN`` with external version 0,
   below every sequence the source will ever give, so replayed changes always win;
4. catch up: run the pipeline's source from P0 with ``--once`` into ``NAME_vN``;
5. swap: one ``_aliases`` call moves NAME to ``NAME_vN`` (the live pipeline writes through
   NAME, so from here on it writes to the new index);
6. catch up again from where step 4 ended, covering what the live pipeline wrote to the
   old index between steps 4 and 5. Reordering between this and the live pipeline is
   harmless thanks to external versions (keep ``index.gc_deletes`` above the time this
   takes, so deletes keep their tombstones; see the README).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from meepo_core.config import MeepoConfig
from meepo_core.errors import ConfigError
from meepo_core.events import Batch, Position, RowEvent
from meepo_core.pipeline import Pipeline, build_pipeline
from meepo_core.plugins import Registry

from .client import make_client
from .elasticsearch_sink import ElasticsearchSink
from .indices import create_index, next_versioned_name, swap_alias
from .mysql_snapshot import (
    SourceDatabase,
    binlog_position,
    estimated_rows,
    primary_key,
    read_chunks,
    resolve_tables,
)

#: The version given to backfilled documents: below any real event's sequence.
SNAPSHOT_VERSION = 0


@dataclass
class BackfillReport:
    start: str  # "FILE:POS" recorded before reading
    targets: dict[str, str]  # alias -> new index
    rows: dict[str, int] = field(default_factory=dict)  # schema.table -> rows read
    previous: dict[str, list[str]] = field(default_factory=dict)  # alias -> old indices
    caught_up: Position | None = None
    dead_letters: int = 0


class Backfill:
    """One backfill run for pipeline ``name``; see the module docstring for the steps."""

    def __init__(
        self,
        config: MeepoConfig,
        name: str,
        registry: Registry,
        *,
        tables: tuple[str, ...] = (),
        sink: int | None = None,
        chunk_size: int = 1000,
        progress: bool = True,
        echo: Callable[[str], None] = lambda line: click.echo(line, err=True),
    ) -> None:
        self.config = config
        self.name = name
        self.registry = registry
        self.only_tables = tables
        self.chunk_size = chunk_size
        self.progress = progress
        self.echo = echo
        raw = config.pipeline_options(name).data
        self.raw: dict[str, Any] = copy.deepcopy(dict(raw))
        self.sink_index = self._pick_sink(sink)
        taken = (self.raw.get("source") or {}).get("server_id")
        self.server_id = next(i for i in iter(lambda: 2**31 + secrets.randbelow(2**31), None)
                              if i != taken)
        self.db = SourceDatabase.from_source(
            self.raw.get("source") or {}, f"{config.pipeline_path(name)}.source")

    def _pick_sink(self, sink: int | None) -> int:
        pipeline = build_pipeline(self.config, self.name, self.registry)  # validates all
        found = [i for i, (_, s) in enumerate(pipeline.sinks) if isinstance(s, ElasticsearchSink)]
        path = f"{self.config.pipeline_path(self.name)}.sinks"
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

    def _pipeline(self, tables: list[str], start: str) -> tuple[Pipeline, ElasticsearchSink]:
        """The pipeline reduced to the backfilled tables and this one sink, starting at
        ``start`` and checkpointing nowhere (the live pipeline keeps its checkpoint)."""
        raw = copy.deepcopy(self.raw)
        raw["source"] = {**raw["source"], "tables": tables, "start": start}
        if raw["source"].get("type") == "mysql":
            # A replica's server_id must be unique on the server: sharing the live
            # pipeline's would make MariaDB/MySQL drop one of the two binlog connections.
            raw["source"]["server_id"] = self.server_id
        raw.pop("exclude_tables", None)
        raw["sinks"] = [raw["sinks"][self.sink_index]]
        raw["checkpoint"] = "none"
        raw.pop("metrics_port", None)
        config = dataclasses.replace(self.config, pipelines={self.name: raw})
        pipeline = build_pipeline(config, self.name, self.registry)
        sink = pipeline.sinks[0][1]
        assert isinstance(sink, ElasticsearchSink)
        return pipeline, sink

    def run(self) -> BackfillReport:
        conn = self.db.connect()
        try:
            tables = resolve_tables(conn, self.db)
            if not tables:
                raise ConfigError(f"{self.config.pipeline_path(self.name)}.source.tables",
                                  "matches no existing table")
            file, pos = binlog_position(conn)
            start = f"{file}:{pos}"
            self.echo(f"meepo es backfill: {self.name}: binlog position {start} recorded")
            pipeline, sink = self._pipeline(tables, start)
            settings = sink.settings
            aliases: dict[str, list[str]] = {}
            for qualified in tables:
                schema, table = qualified.split(".", 1)
                aliases.setdefault(settings.index_name(schema, table), []).append(qualified)
            if self.only_tables:
                tables, aliases = self._restrict(tables, aliases)
                pipeline, sink = self._pipeline(tables, start)
            targets = {alias: next_versioned_name(sink.client, alias) for alias in aliases}
            for alias, members in aliases.items():
                schema, table = members[0].split(".", 1)
                create_index(sink.client, targets[alias], settings.rule(schema, table))
                self.echo(f"meepo es backfill: created {targets[alias]} for alias {alias}")
            report = BackfillReport(start=start, targets=targets)
            context = pipeline.context()
            sink.builder.redirect = dict(targets)
            sink.open(context)
            try:
                for qualified in tables:
                    report.rows[qualified] = self._copy_table(conn, sink, qualified)
                pipeline.dead_letters.sync()
            finally:
                sink.close()
                pipeline.dead_letters.close()
            report.dead_letters += sink.dead_letters
        finally:
            conn.close()
        caught_up = self._catch_up(tables, start, targets, None)
        client = make_client(settings.client)
        try:
            for alias, target in targets.items():
                report.previous[alias] = swap_alias(client, alias, target)
                self.echo(f"meepo es backfill: alias {alias} -> {target} (was "
                          f"{', '.join(report.previous[alias]) or 'nothing'})")
        finally:
            client.close()
        report.caught_up = self._catch_up(tables, start, targets, caught_up)
        return report

    def _restrict(self, tables: list[str], aliases: dict[str, list[str]]
                  ) -> tuple[list[str], dict[str, list[str]]]:
        """Only the ``--table`` tables; every table sharing an alias with one must come
        along, or the swap would drop its documents."""
        for wanted in self.only_tables:
            if wanted not in tables:
                raise ConfigError("--table", f"{wanted} is not among the pipeline's tables: "
                                  f"{', '.join(tables)}")
        kept = {alias: members for alias, members in aliases.items()
                if any(t in self.only_tables for t in members)}
        for alias, members in kept.items():
            missing = [t for t in members if t not in self.only_tables]
            if missing:
                raise ConfigError("--table", f"{missing[0]} also writes to {alias!r}; "
                                  "add --table for it too, or the swap would drop its documents")
        return [t for t in tables if t in self.only_tables], kept

    def _copy_table(self, conn: Any, sink: ElasticsearchSink, qualified: str) -> int:
        schema, table = qualified.split(".", 1)
        pk = primary_key(conn, schema, table)
        total = estimated_rows(conn, schema, table)
        count = 0
        out = sys.stderr if self.progress else io.StringIO()
        with click.progressbar(length=max(total, 1), label=qualified, show_pos=True,
                               file=out) as bar:
            def hide(columns: list[str]) -> set[str]:
                return self.db.hidden_columns(qualified, columns)

            for rows in read_chunks(conn, schema, table, pk, self.chunk_size, hide):
                events = tuple(
                    RowEvent(schema, table, "write", _pk(row, pk, qualified), None, row, None,
                             sequence=SNAPSHOT_VERSION)
                    for row in rows
                )
                sink.apply(Batch(events))
                count += len(rows)
                bar.update(min(len(rows), max(total - bar.pos, 0)))
        self.echo(f"meepo es backfill: {qualified}: {count} rows copied")
        return count

    def _catch_up(self, tables: list[str], start: str, targets: dict[str, str],
                  position: Position | None) -> Position | None:
        pipeline, sink = self._pipeline(tables, start)
        sink.builder.redirect = dict(targets)
        stats = pipeline.run(once=True, start=position)
        where = stats.position if stats.position is not None else position
        self.echo(f"meepo es backfill: caught up {stats.events} events to {where}")
        return where


def _pk(row: dict[str, Any], pk: list[str], qualified: str) -> Any:
    missing = [c for c in pk if c not in row]
    if missing:
        raise ConfigError("source.columns", f"{qualified}: pk column {missing[0]} is hidden "
                          "by the source's columns rule; the document id needs it")
    return row[pk[0]] if len(pk) == 1 else tuple(row[c] for c in pk)
