"""``sqlalchemy-outbox`` source: relays the outbox table to the pipeline's sinks.

Order and position: rows are read by ascending ``id``, which is commit order because
writers allocate ids under the outbox lock (see :mod:`meepo_sqlalchemy.outbox`). The
position is the ``id`` of the last row of the last relayed transaction, an int; the batch
``sequence`` of each event is its row ``id``. Rows of one transaction are contiguous and
become visible at once, so a transaction ends where ``txid`` changes or where the table
ends.

Removal: rows are deleted only up to a checkpointed position, that is after every sink
applied them: in :meth:`acknowledge`, which the runner calls after each checkpoint, and
at start for rows at or below the checkpoint a previous run saved. A crash between the
sinks and the checkpoint replays those rows (at-least-once). ``delete_relayed = false``
keeps every row (several pipelines on one outbox; purge them yourself).

Snapshots: with ``tables`` listed, the source can copy those tables' current rows while it
relays (``snapshot = "initial"``, ``meepo snapshot NAME``); see
:mod:`meepo_sqlalchemy.outbox_snapshot`.

Schema changes: the first row of each table in a run comes after a ``describe`` or
``alter`` when the table's definition (reflected from the database) differs from the one
stored by earlier runs; see :mod:`meepo_sqlalchemy.schema_tracking`.

Polling: one indexed range query (``id > last ORDER BY id LIMIT n``) per poll, each in its
own short autocommit transaction (so MySQL's REPEATABLE READ never pins an old snapshot);
a full page is followed immediately by the next one, an idle outbox is polled every
``poll_interval`` seconds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import Engine, create_engine, delete, func, inspect, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from meepo_core import (
    Batch,
    Batcher,
    Options,
    OptionSpec,
    Position,
    RowEvent,
    SchemaChange,
    Source,
    SourceError,
    TableDefinition,
    event_from_dict,
    qualified_name,
)

from .outbox import DEFAULT_NAME, OutboxTables, is_missing_table, missing_message
from .outbox_snapshot import MARK_ACTION, OutboxSnapshots, watermark_of
from .schema_tracking import DefinitionStore, SchemaTracker, reflected_definition
from .urls import describe, url_option, url_spec

if TYPE_CHECKING:
    from meepo_core import PipelineContext

log = logging.getLogger("meepo.sqlalchemy.outbox")


URL_OPTION = url_spec(
    "SQLAlchemy URL of the application database; `postgresql://` and `mysql://` use "
    "psycopg / pymysql when the default driver is missing; a relative SQLite path is "
    "relative to the config file.")
TABLE = OptionSpec("table", "string", DEFAULT_NAME,
                   "Outbox table name (the lock table is `<table>_lock`).")
SCHEMA = OptionSpec("schema", "string", None, "Schema of both tables.")
POLL_INTERVAL = OptionSpec("poll_interval", "number", 0.5,
                           "Seconds between polls of an idle outbox.", minimum=0.01)
PAGE_SIZE = OptionSpec("page_size", "integer", 1000, "Rows per query.", minimum=1)
DELETE_RELAYED = OptionSpec("delete_relayed", "boolean", True,
                            "Delete rows once checkpointed.")
TABLES = OptionSpec(
    "tables", "array of strings", None,
    "The application's tables whose current rows a snapshot copies (`snapshot = "
    '\"initial\"`, `meepo snapshot NAME`); none: no snapshots.')


class OutboxSource(Source):
    """Relays ``table`` of the database at ``url``; see the module docstring."""

    OPTIONS = (URL_OPTION, TABLE, SCHEMA, POLL_INTERVAL, PAGE_SIZE, DELETE_RELAYED, TABLES)
    yields_fresh_events = True  # decoded for this run, held nowhere else

    snapshots: OutboxSnapshots  # its snapshot methods delegate to it (Source.snapshots)

    def __init__(self, url: URL, table: str = DEFAULT_NAME, schema: str | None = None,
                 poll_interval: float = 0.5, delete_relayed: bool = True,
                 page_size: int = 1000, snapshot_tables: list[str] | None = None,
                 key_path: str = "source") -> None:
        self.url = url
        self.tables = OutboxTables(table, schema=schema)
        self.poll_interval = poll_interval
        self.delete_relayed = delete_relayed
        self.page_size = page_size
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self.schema_tracker: SchemaTracker | None = None
        self.snapshots = OutboxSnapshots(lambda: self.engine, self.tables, snapshot_tables,
                                         key_path)

    @classmethod
    def from_options(cls, options: Options) -> Self:
        url = url_option(options, URL_OPTION)
        table = options.string(TABLE)
        schema = options.string(SCHEMA)
        poll = options.number(POLL_INTERVAL)
        delete_relayed = options.boolean(DELETE_RELAYED)
        page = options.integer(PAGE_SIZE)
        tables = options.string_list(TABLES)
        options.done()
        return cls(url, table, schema, poll, delete_relayed, page, tables, options.path)

    @property
    def engine(self) -> Engine:
        with self._engine_lock:
            if self._engine is None:
                try:
                    self._engine = create_engine(self.url, pool_pre_ping=True)
                except (SQLAlchemyError, ImportError) as exc:
                    raise SourceError(
                        f"source.url: cannot use {describe(self.url)}: {exc}; install the "
                        "database driver (psycopg, pymysql) or fix the URL"
                    ) from exc
            return self._engine

    def check(self) -> list[str]:
        try:
            with self.engine.connect() as conn:
                names = inspect(conn).get_table_names(schema=self.tables.outbox.schema)
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot reach {describe(self.url)}: {_first_line(exc)}") from exc
        missing = [t for t in (self.tables.outbox, self.tables.lock) if t.name not in names]
        return [missing_message(missing, self.tables, describe(self.url))] if missing else []

    def stream(
        self, start: Position | None, context: PipelineContext, *, once: bool
    ) -> Iterator[Batch]:
        last = _position(start)
        if self.delete_relayed and last > 0:
            self._delete_upto(last)
        batcher = Batcher(context.batch_size, context.batch_wait)
        self.schema_tracker = tracker = SchemaTracker(self._reflect, DefinitionStore(
            context.base_dir / ".meepo" / f"{context.pipeline}.sqlalchemy-schemas.json"))
        # the table of the last event: the tracker is asked only when the table changes
        met_schema, met_table = "", ""
        open_tx: str | None = None
        open_events: list[RowEvent | SchemaChange] = []
        tx_end = last
        while not context.stopping.is_set():
            rows = self._poll(last)
            for row_id, txid, action, payload in rows:
                if open_tx is not None and txid != open_tx:
                    yield from self._end_tx(batcher, open_events, tx_end)
                    open_tx, open_events = None, []
                if action == MARK_ACTION:  # a snapshot watermark: its own transaction
                    batcher.watermark(watermark_of(payload), row_id)
                    if (batch := batcher.commit(row_id)) is not None:
                        yield batch
                    last = row_id
                    continue
                event = _decode(payload, row_id, txid)
                open_tx, tx_end = txid, row_id
                if event.table != met_table or event.schema != met_schema:
                    met_schema, met_table = event.schema, event.table
                    if not tracker.is_met(met_schema, met_table) and (change := tracker.meet(
                            met_schema, met_table, position=row_id,
                            committed_at=event.committed_at, txid=txid,
                            sequence=row_id)) is not None:
                        open_events.append(change)
                open_events.append(event)
                if len(open_events) >= batcher.max_events:  # a huge transaction: stream it
                    for pending in open_events:
                        if (batch := _add(batcher, pending)) is not None:
                            yield batch
                    open_events = []
                last = row_id
            if len(rows) == self.page_size:
                continue  # more is there right now
            if open_tx is not None:  # end of table: the last transaction is complete
                yield from self._end_tx(batcher, open_events, tx_end)
                open_tx, open_events = None, []
            if (batch := batcher.flush()) is not None:
                yield batch
            if once:
                return
            context.stopping.wait(self.poll_interval)

    def _end_tx(self, batcher: Batcher, events: list[RowEvent | SchemaChange],
                position: int) -> Iterator[Batch]:
        for event in events:
            if (batch := _add(batcher, dataclasses.replace(event, position=position))) \
                    is not None:
                yield batch
        if (batch := batcher.commit(position)) is not None:
            yield batch

    def _poll(self, last: int) -> list[tuple[int, str, str, str]]:
        outbox = self.tables.outbox
        query = (select(outbox.c.id, outbox.c.txid, outbox.c.action, outbox.c.payload)
                 .where(outbox.c.id > last).order_by(outbox.c.id).limit(self.page_size))
        try:
            with self.engine.connect() as conn:
                rows = [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in conn.execute(query)]
                conn.rollback()
        except SQLAlchemyError as exc:
            raise self._missing(exc) or SourceError(
                f"cannot read outbox {outbox.name} in {describe(self.url)}: {_first_line(exc)}"
            ) from exc
        return rows

    def _missing(self, exc: SQLAlchemyError) -> SourceError | None:
        """The one-line error for an outbox that was never created, else ``None``."""
        if not is_missing_table(exc):
            return None
        return SourceError(missing_message([self.tables.outbox], self.tables, describe(self.url)))

    def current_position(self) -> Position | None:
        outbox = self.tables.outbox
        try:
            with self.engine.connect() as conn:
                last = conn.execute(select(func.max(outbox.c.id))).scalar()
                conn.rollback()
        except SQLAlchemyError as exc:
            raise self._missing(exc) or SourceError(
                f"cannot read outbox {outbox.name} in {describe(self.url)}: {_first_line(exc)}"
            ) from exc
        return int(last or 0)

    def _reflect(self, schema: str, table: str) -> TableDefinition | None:
        try:
            with self.engine.connect() as conn:
                definition = reflected_definition(conn, schema, table)
                conn.rollback()
        except SQLAlchemyError as exc:
            raise SourceError(
                f"cannot read the definition of table {qualified_name(schema, table)} in "
                f"{describe(self.url)}: {_first_line(exc)}; grant the relay's user read "
                "access to it") from exc
        return definition

    def acknowledge(self, position: Position) -> None:
        if self.schema_tracker is not None:
            self.schema_tracker.acknowledge(position)
        if self.delete_relayed and position is not None:
            self._delete_upto(_position(position))

    def _delete_upto(self, position: int) -> None:
        outbox = self.tables.outbox
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(outbox).where(outbox.c.id <= position))
        except SQLAlchemyError as exc:  # retried at the next checkpoint or start
            if (missing := self._missing(exc)) is not None:
                raise missing from exc
            log.warning("could not delete relayed outbox rows up to %s: %s", position,
                        _first_line(exc))

    def close(self) -> None:
        with self._engine_lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _add(batcher: Batcher, event: RowEvent | SchemaChange) -> Batch | None:
    if isinstance(event, SchemaChange):  # before the row event after it, same transaction
        batcher.schema_change(event)
        return None
    return batcher.add(event)


def _position(value: Position | None) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise SourceError(
        f"checkpoint {value!r} is not an outbox position (an int); it belongs to another "
        "source type: delete the checkpoint to relay the outbox from its start"
    )


def _decode(payload: str, row_id: int, txid: str) -> RowEvent:
    try:
        data: dict[str, Any] = json.loads(payload)
        event = event_from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"outbox row {row_id} is not a meepo event ({exc})") from exc
    return dataclasses.replace(event, sequence=row_id, txid=txid)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
