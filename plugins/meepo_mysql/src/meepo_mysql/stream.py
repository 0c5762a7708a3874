"""Reading the binlog: row events, transaction boundaries, reconnects.

One :class:`BinlogStream` follows one server. It opens a ``BinLogStreamReader`` at the
last transaction boundary it has seen (file/pos, or the GTID state in GTID mode), turns
rows events into :class:`~meepo_core.RowEvent` s and groups them with a
:class:`~meepo_core.Batcher`. A position is produced only at a transaction's end (XID,
COMMIT, XA PREPARE, a standalone statement such as DDL, or a binlog rotation outside a
transaction), so checkpoints never fall mid-transaction.

When the connection drops, stalls (nothing, not even a heartbeat, for 2.5 heartbeat
periods) or the server restarts, the committed part of the current batch is delivered,
the open transaction's rest is dropped, and a new reader starts from the last boundary
after an exponential backoff; the open transaction is then delivered again in full.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    NotImplementedEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from meepo_core import Batch, Batcher, PipelineContext, RowEvent, SourceError

from .config import MySQLSettings
from .connection import ConnectionFactory, Idle, ReconnectRefused
from .decode import TablePlan, build_plan
from .positions import BinlogPosition, MariaDBGtidState, MySQLGtidState, file_index
from .server import (
    ER_ACCESS_DENIED,
    ER_MASTER_FATAL_READING_BINLOG,
    ControlConnection,
    error_code,
    error_text,
    is_retryable,
)

log = logging.getLogger("meepo.mysql")

ONLY_EVENTS = [
    WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, PartialUpdateRowsEvent, TableMapEvent,
    XidEvent, QueryEvent, RotateEvent, GtidEvent, MariadbGtidEvent, HeartbeatLogEvent,
    XAPrepareEvent, NotImplementedEvent,
]
MARIADB_FL_STANDALONE = 0x01
#: Event types that carry row changes python-mysql-replication cannot decode: MariaDB's
#: compressed query/rows events (log_bin_compress) and MySQL's TRANSACTION_PAYLOAD_EVENT
#: (binlog_transaction_compression). Seeing one stops the stream instead of losing rows.
UNDECODABLE_EVENTS = {
    165: "log_bin_compress", 166: "log_bin_compress", 167: "log_bin_compress",
    168: "log_bin_compress", 169: "log_bin_compress", 170: "log_bin_compress",
    171: "log_bin_compress", 40: "binlog_transaction_compression",
}
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 30.0  # seconds a connection must last to reset the reconnect budget
_STATEMENT_DML = ("INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD")


class Stalled(Exception):
    """Neither an event nor a heartbeat arrived for too long."""


class ConnectionEnded(Exception):
    """The server ended a blocking dump (it shuts down)."""


class BinlogStream:
    """Streams batches from ``start`` (a transaction boundary); see the module docstring."""

    def __init__(
        self,
        settings: MySQLSettings,
        control: ControlConnection,
        context: PipelineContext,
        *,
        server_id: int,
        once: bool,
        gtid_mode: bool,
    ) -> None:
        self.settings = settings
        self.control = control
        self.context = context
        self.server_id = server_id
        self.once = once
        self.gtid_mode = gtid_mode
        self.flavor = control.flavor
        self.filter = settings.filter
        self.stall_after = settings.heartbeat * 2.5
        self.closed = False
        self.reconnects = 0
        self._progress = False
        self._file = ""
        self._file_index = 0
        self._factory: ConnectionFactory | None = None
        self._reader: BinLogStreamReader | None = None
        self._plans: dict[int, TablePlan | None] = {}
        self._plan_cache: dict[tuple[Any, ...], TablePlan] = {}
        self._json_columns: dict[tuple[str, str], frozenset[str]] = {}
        self._no_pk_warned: set[str] = set()
        self._batcher = Batcher(context.batch_size, context.batch_wait)
        # Last transaction boundary seen (where a new reader starts).
        self.committed: BinlogPosition = BinlogPosition("", 4)
        self._gtids: MariaDBGtidState | MySQLGtidState | None = None

    # -- public -------------------------------------------------------------------------
    def batches(self, start: BinlogPosition) -> Iterator[Batch]:
        """Batches from ``start`` until caught up (``once``), stopped, or a fatal error."""
        self.committed = start
        self._gtids = self._initial_gtids(start)
        failures = 0
        stopping = self.context.stopping
        while not self.closed and not stopping.is_set():
            self._progress = False
            opened = time.monotonic()
            try:
                self._open_reader()
                yield from self._read()
                if (batch := self._batcher.flush()) is not None:
                    yield batch
                return
            except (Stalled, ConnectionEnded, ReconnectRefused, Idle) as exc:
                error: BaseException = exc
            except pymysql.err.MySQLError as exc:
                self._raise_if_fatal(exc)
                error = exc
            except (OSError, EOFError) as exc:
                error = exc
            finally:
                self._close_reader()
            if self.closed:
                return
            # Deliver what committed; the open transaction comes again from the boundary.
            if (batch := self._batcher.flush()) is not None:
                yield batch
            self._batcher = Batcher(self.context.batch_size, self.context.batch_wait)
            # A connection that delivered a transaction or lasted a while was healthy.
            healthy = self._progress or time.monotonic() - opened > HEALTHY_AFTER
            failures = 1 if healthy else failures + 1
            if failures > self.settings.reconnect_attempts:
                raise SourceError(
                    f"lost the binlog stream from MySQL at {self.settings.address} and "
                    f"{failures - 1} reconnects failed: {_describe(error)}; rerun to resume "
                    f"from {self.committed.to_json()}"
                ) from error
            delay = min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_MAX)
            log.warning(
                "binlog stream from %s lost (%s); reconnecting in %.1fs from %s (attempt %d of %d)",
                self.settings.address, _describe(error), delay, self.committed.to_json(),
                failures, self.settings.reconnect_attempts,
            )
            self.reconnects += 1
            if stopping.wait(delay):
                return

    def close(self) -> None:
        """Stop reading (callable from another thread: it unblocks a waiting read)."""
        self.closed = True
        factory = self._factory
        if factory is not None and factory.stream is not None:
            factory.stream.shutdown()

    # -- reader lifecycle ---------------------------------------------------------------
    def _initial_gtids(self, start: BinlogPosition) -> MariaDBGtidState | MySQLGtidState | None:
        if self.flavor == "mariadb":
            text = start.gtid
            if text is None and start.file:
                text = self.control.mariadb_gtid_at(start.file, start.pos)
            return MariaDBGtidState(text) if text is not None else None
        if self.gtid_mode and start.gtid:
            return MySQLGtidState(start.gtid)
        return None

    def _open_reader(self) -> None:
        only_schemas, only_tables = self.filter.reader_prefilter()
        self._factory = ConnectionFactory()
        kwargs: dict[str, Any] = {
            "connection_settings": self.settings.connection_settings(),
            "server_id": self.server_id,
            "blocking": not self.once,
            "resume_stream": True,
            "only_events": ONLY_EVENTS,
            "only_schemas": only_schemas,
            "only_tables": only_tables,
            "slave_heartbeat": self.settings.heartbeat,
            "pymysql_wrapper": self._factory,
            "enable_logging": False,
            "filter_non_implemented_events": False,  # see UNDECODABLE_EVENTS
        }
        if self.gtid_mode and self._gtids is not None:
            kwargs["auto_position"] = str(self._gtids)
            kwargs["is_mariadb"] = self.flavor == "mariadb"
        else:
            # MariaDB accepts the plain COM_BINLOG_DUMP at file/pos; is_mariadb=True would
            # ignore the coordinates and dump from the first binlog.
            kwargs["log_file"] = self.committed.file
            kwargs["log_pos"] = self.committed.pos
        self._reader = BinLogStreamReader(**kwargs)
        self._file = self.committed.file
        self._file_index = file_index(self._file) if self._file else 0

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()

    def _raise_if_fatal(self, exc: pymysql.err.MySQLError) -> None:
        code = error_code(exc)
        where = f"MySQL at {self.settings.address}"
        if code == ER_MASTER_FATAL_READING_BINLOG:
            text = error_text(exc)
            resume = self.committed.to_json()
            if "purged" in text.lower() or "could not find" in text.lower():
                raise SourceError(
                    f"{where} no longer has the binlog to resume from {resume} (it was "
                    f"purged): {text}; to recover, delete the checkpoint and backfill the "
                    "sinks, or delete it and set start (\"latest\", \"FILE:POS\" or a GTID set)"
                ) from exc
            raise SourceError(f"{where} refused to stream from {resume}: {text}") from exc
        if code in ER_ACCESS_DENIED or code == 1227:
            raise SourceError(
                f"{where} denied the binlog stream to {self.settings.user!r}: {error_text(exc)}; "
                "run meepo check for the GRANT to apply"
            ) from exc
        if not is_retryable(exc):
            raise SourceError(f"binlog stream from {where} failed: {error_text(exc)}") from exc

    # -- the hot loop ---------------------------------------------------------------------
    def _read(self) -> Iterator[Batch]:
        reader = self._reader
        assert reader is not None and self._factory is not None
        fetch = reader.fetchone
        batcher = self._batcher
        stopping = self.context.stopping
        plans = self._plans
        plans.clear()  # table ids are per connection
        in_trx = False
        standalone = False
        trx_gtid: str | None = None
        trx_time: datetime | None = None
        txid: str | None = None
        add = batcher.add
        row_event = RowEvent
        while True:
            try:
                event = fetch()
            except Idle:
                if stopping.is_set() or self.closed:
                    return
                # caught up with the server: deliver what is complete instead of waiting
                # batch_wait for more (batching only pays while there is a backlog)
                if (batch := batcher.flush()) is not None:
                    yield batch
                conn = self._factory.stream
                if conn is not None and conn.silent_for() > self.stall_after:
                    raise Stalled(
                        f"nothing received for {conn.silent_for():.1f}s (heartbeat "
                        f"{self.settings.heartbeat:g}s)"
                    ) from None
                continue
            if event is None:
                if self.once:
                    return
                raise ConnectionEnded("the server ended the binlog dump")
            kind = event.__class__
            if kind is WriteRowsEvent or kind is UpdateRowsEvent or kind is DeleteRowsEvent:
                plan = plans.get(event.table_id)
                if plan is None:
                    continue  # a table not followed: its rows are never decoded
                if trx_time is None:
                    trx_time = datetime.fromtimestamp(event.timestamp, UTC)
                if txid is None:
                    txid = f"{self._file}:{event.packet.log_pos - event.packet.event_size}"
                packet = event.packet
                seq = (self._file_index << 32) | (packet.log_pos - packet.event_size)
                schema, table, plain, key = plan.schema, plan.table, plan.plain, plan.key
                # shared by the rows of this binlog event: where it starts, and the key names
                where = {"file": self._file, "pos": packet.log_pos - packet.event_size}
                pk_columns = plan.pk or None
                if kind is UpdateRowsEvent:
                    for row in event.rows:
                        if plain:  # the common case, kept free of calls
                            before, after = row["before_values"], row["after_values"]
                            pk = after[key]
                        else:
                            before, after, pk = self._update_images(plan, row)
                            if pk is _SKIP:
                                seq += 1
                                continue
                        batch = add(row_event(schema, table, "update", pk, before, after,
                                              where, trx_time, txid, seq, pk_columns))
                        seq += 1
                        if batch is not None:
                            yield batch
                elif kind is WriteRowsEvent:
                    for row in event.rows:
                        if plain:
                            values = row["values"]
                            pk = values[key]
                        else:
                            values, pk = self._image(plan, row)
                            if pk is _SKIP:
                                seq += 1
                                continue
                        batch = add(row_event(schema, table, "write", pk, None, values,
                                              where, trx_time, txid, seq, pk_columns))
                        seq += 1
                        if batch is not None:
                            yield batch
                else:
                    for row in event.rows:
                        if plain:
                            values = row["values"]
                            pk = values[key]
                        else:
                            values, pk = self._image(plan, row)
                            if pk is _SKIP:
                                seq += 1
                                continue
                        batch = add(row_event(schema, table, "delete", pk, values, None,
                                              where, trx_time, txid, seq, pk_columns))
                        seq += 1
                        if batch is not None:
                            yield batch
            elif kind is TableMapEvent:
                plans[event.table_id] = self._plan(event)
            elif kind is XidEvent or kind is XAPrepareEvent:
                batch = self._commit(event.packet.log_pos, trx_gtid)
                in_trx = False
                trx_gtid = trx_time = txid = None
                if batch is not None:
                    yield batch
                if stopping.is_set():
                    return
            elif kind is MariadbGtidEvent or kind is GtidEvent:
                trx_gtid = event.gtid
                txid = trx_gtid
                trx_time = datetime.fromtimestamp(event.timestamp, UTC)
                standalone = kind is MariadbGtidEvent and bool(event.flags & MARIADB_FL_STANDALONE)
                in_trx = not standalone
            elif kind is QueryEvent:
                query = event.query.lstrip()
                head = query[:9].upper()
                if head.startswith("BEGIN") or head.startswith("XA START"):
                    in_trx = True
                    if trx_time is None:
                        trx_time = datetime.fromtimestamp(event.timestamp, UTC)
                    if txid is None:
                        txid = f"{self._file}:{event.packet.log_pos - event.packet.event_size}"
                    continue
                if head.startswith("COMMIT") or head.startswith("ROLLBACK") or not in_trx:
                    if not head.startswith(("COMMIT", "ROLLBACK", "XA ", "SAVEPOINT")):
                        self._statement(query)
                    batch = self._commit(event.packet.log_pos, trx_gtid)
                    in_trx = False
                    trx_gtid = trx_time = txid = None
                    if batch is not None:
                        yield batch
                    if stopping.is_set():
                        return
            elif kind is RotateEvent:
                self._file = event.next_binlog
                self._file_index = file_index(self._file)
                if event.timestamp != 0 and not in_trx and not batcher.in_transaction:
                    # A real rotation: move the boundary into the new file, so purging the
                    # old one cannot strand a quiet pipeline.
                    batch = self._commit(event.position, None)
                    if batch is not None:
                        yield batch
            elif kind is PartialUpdateRowsEvent:
                plan = plans.get(event.table_id)
                if plan is not None:
                    raise SourceError(
                        f"{plan.qualified}: the binlog holds a partial JSON update, whose after "
                        "image is incomplete; run SET GLOBAL binlog_row_value_options = '' on "
                        "the server and backfill this table"
                    )
            elif kind is NotImplementedEvent:
                setting = UNDECODABLE_EVENTS.get(event.event_type)
                if setting is not None:
                    raise SourceError(
                        f"the binlog at {self._file}:{event.packet.log_pos} holds a compressed "
                        f"event (type {event.event_type}) that cannot be decoded: run SET "
                        f"GLOBAL {setting} = OFF on the server and backfill from there"
                    )
            # HeartbeatLogEvent: the connection is alive; nothing to do.

    def _commit(self, log_pos: int, gtid: str | None) -> Batch | None:
        self._progress = True
        gtids = self._gtids
        if gtid is not None and gtids is not None:
            gtids.update(gtid)
        self.committed = BinlogPosition(
            self._file, log_pos, str(gtids) if gtids is not None else None
        )
        return self._batcher.commit(self.committed.to_json())

    # -- tables -------------------------------------------------------------------------
    def _plan(self, event: Any) -> TablePlan | None:
        schema, table = event.schema, event.table
        if not self.filter.follows(schema, table):
            return None
        metadata = event.optional_metadata
        signature = (schema, table, *((c.name, c.type) for c in event.columns),
                     tuple(metadata.simple_primary_key_list or ()),
                     tuple(metadata.primary_keys_with_prefix or ()))
        plan = self._plan_cache.get(signature)
        if plan is None:
            names = [c.name for c in event.columns]
            if any(name is None for name in names):
                raise SourceError(
                    f"{schema}.{table}: the binlog carries no column names; run SET GLOBAL "
                    "binlog_row_metadata = 'FULL' on the server (events written before that "
                    "cannot be decoded by name: backfill the table)"
                )
            hidden = self.filter.hidden_columns(schema, table, names)
            json_columns = self._mariadb_json_columns(schema, table)
            plan = build_plan(event, hidden, json_columns, self.flavor)
            self._plan_cache[signature] = plan
            if not plan.pk:
                self._warn_no_pk(plan)
        return plan

    def _mariadb_json_columns(self, schema: str, table: str) -> frozenset[str]:
        if self.flavor != "mariadb":
            return frozenset()
        key = (schema, table)
        found = self._json_columns.get(key)
        if found is None:
            try:
                found = self.control.mariadb_json_columns(schema, table)
            except pymysql.err.MySQLError as exc:
                log.warning("cannot read JSON columns of %s.%s (%s); they stay text",
                            schema, table, error_text(exc))
                found = frozenset()
            self._json_columns[key] = found
        return found

    def _statement(self, query: str) -> None:
        """A statement outside a transaction: DDL, or DML logged as a statement."""
        self._json_columns.clear()  # a DDL may have changed which columns hold JSON
        self._plan_cache.clear()
        head = query[:8].upper()
        if head.startswith(_STATEMENT_DML):
            self.context.metrics.record_failure("source", "statement_dml_skipped")
            log.error(
                "a data change was logged as a statement, not as rows, so meepo cannot "
                "deliver it (binlog_format must be ROW): %.200s", query,
            )
        elif head.startswith("TRUNCATE"):
            self.context.metrics.record_failure("source", "truncate_not_delivered")
            log.warning(
                "TRUNCATE removes rows without row events, so sinks keep them until a "
                "backfill: %.200s", query,
            )

    def _warn_no_pk(self, plan: TablePlan) -> None:
        if plan.qualified in self._no_pk_warned:
            return
        self._no_pk_warned.add(plan.qualified)
        if self.settings.no_pk == "skip":
            log.warning(
                "table %s has no primary key: its rows are skipped (no_pk = \"skip\"); add a "
                "primary key, or set no_pk = \"row\" to key events by the whole row",
                plan.qualified,
            )
        else:
            log.warning("table %s has no primary key: events are keyed by the whole row "
                        "(no_pk = \"row\")", plan.qualified)

    def _image(self, plan: TablePlan, row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """The visible image and key of a written or deleted row (key ``_SKIP``: skip it)."""
        values = plan.image(row["values"], row["none_sources"])
        pk = self._pk(plan, values)  # before hiding: a hidden key column still keys
        if plan.hidden:
            values = _hide(values, plan.hidden)
        if pk is _ROW:
            pk = tuple(values.values())
        return values, pk

    def _update_images(
        self, plan: TablePlan, row: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], Any]:
        before = plan.image(row["before_values"], row["before_none_sources"])
        after = plan.image(row["after_values"], row["after_none_sources"])
        pk = self._pk(plan, after)
        if plan.hidden:
            before = _hide(before, plan.hidden)
            after = _hide(after, plan.hidden)
        if pk is _ROW:
            pk = tuple(after.values())
        return before, after, pk

    def _pk(self, plan: TablePlan, values: dict[str, Any]) -> Any:
        pk = plan.pk
        if len(pk) == 1:
            return values[pk[0]]
        if pk:
            return tuple([values[name] for name in pk])
        if self.settings.no_pk == "row":
            return _ROW
        self.context.metrics.record_failure("source", "no_pk_skipped")
        return _SKIP


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_SKIP = _Marker("skip")
_ROW = _Marker("row")


def _hide(values: dict[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    for name in hidden:
        values.pop(name, None)
    return values


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pymysql.err.MySQLError):
        return error_text(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

