"""Reading the binlog: from dump packets to batches of row events.

:class:`BinlogStream` ties the parts together, each with one job:
:class:`~meepo_mysql.reader.DumpReader` (the dump's lifecycle and reconnects),
:class:`~meepo_mysql.transactions.TransactionTracker` (boundaries, GTIDs, savepoints,
rollbacks, positions), :class:`~meepo_mysql.tables.Tables` (one plan per table
definition: decoder and event builder) and the rows decoder itself
(:mod:`meepo_mysql.rows`). Its loop reads each packet's header and hands the event to
the part it concerns.

When the connection drops, stalls or the server restarts, the committed part of the
current batch is delivered, the open transaction's rest is dropped, and a new dump
starts from the last boundary; the open transaction is then delivered again in full.
A rows event that cannot be decoded stops the stream with one line naming the table,
the position and the column; the checkpoint stays before its transaction.
"""

from __future__ import annotations

import logging
import re
import struct
import time
import zlib
from collections.abc import Iterator
from typing import Any

from meepo_core import Batch, PipelineContext, SourceError, qualified_name

from . import binlog as bl
from .config import MySQLSettings
from .control_connection import ControlConnection
from .ddl import truncated_table
from .dump_connection import DumpConnection, DumpEnded, Idle
from .positions import BinlogPosition, sequence_base
from .reader import HEALTHY_AFTER, LOST, ConnectionEnded, DumpReader, Stalled
from .rendezvous import PauseRendezvous
from .rows import RowDecodeError, UnsupportedColumn, parse_rows_body
from .schema_events import SchemaEvents, unwrap_versioned
from .tables import TablePlan, Tables
from .transactions import GtidState, TransactionTracker

log = logging.getLogger("meepo.mysql")

#: Post-header lengths of binlog v4 until the FORMAT_DESCRIPTION event says otherwise.
_DEFAULT_FORMAT = bl.FormatDescription("", b"", False)
_STATEMENT_DML = ("INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD")
_DDL = ("CREATE", "ALTER", "DROP", "RENAME")
_SCHEMA_STATEMENTS = (*_DDL, "TRUNCATE")
_IDENTIFIER = re.compile(r"\s*`?((?:[^`]|``)*)`?\s*$")
_LEADING_COMMENTS = re.compile(r"(?:\s+|/\*.*?\*/|(?:#|--)[^\n]*)*", re.S)


class BinlogStream:
    """Streams batches from a transaction boundary; see the module docstring."""

    def __init__(
        self, settings: MySQLSettings, control: ControlConnection, context: PipelineContext,
        *, server_id: int, once: bool, gtid_mode: bool, reference: bool = False,
        rendezvous: PauseRendezvous | None = None, start: Any = None,
    ) -> None:
        self.settings = settings
        self.rendezvous = rendezvous if rendezvous is not None else PauseRendezvous()
        self.control = control
        self.context = context
        self.once = once
        self.stall_after = settings.heartbeat * 2.5
        self.closed = False
        self.reader = DumpReader(settings, control, server_id, once=once, gtid_mode=gtid_mode,
                                 wake=rendezvous.wake_socket if rendezvous is not None else None)
        self.tables = Tables(settings, control, context, reference=reference, start=start)
        self.schemas = SchemaEvents(control, settings.filter)

    # -- public -------------------------------------------------------------------------
    def batches(self, start: BinlogPosition, gtids: GtidState | None) -> Iterator[Batch]:
        """Batches from ``start`` until caught up (``once``), stopped, or a fatal error."""
        tracker = TransactionTracker(self.context, gtids, start, self.tables.history)
        stopping = self.context.stopping
        while not self.closed and not stopping.is_set():
            opened = time.monotonic()
            try:
                dump = self.reader.open(tracker.committed)
                yield from self._read(dump, tracker)
                if (batch := tracker.flush()) is not None:
                    yield batch
                return
            except SourceError:
                # Deliver the transactions that completed before the event that stops us.
                if (batch := tracker.flush()) is not None:
                    yield batch
                raise
            except LOST as exc:
                self.reader.raise_if_fatal(exc, tracker.committed)
                error: BaseException = exc
            finally:
                self.reader.close()
            if self.closed:
                return
            # Deliver what committed; the open transaction comes again from the boundary.
            if (batch := tracker.flush()) is not None:
                yield batch
            healthy = tracker.progress or time.monotonic() - opened > HEALTHY_AFTER
            tracker.restart()
            delay = self.reader.retry_delay(error, tracker.committed, healthy=healthy)
            if stopping.wait(delay):
                return

    def close(self) -> None:
        """Stop reading (callable from another thread: it unblocks a waiting read)."""
        self.closed = True
        self.reader.shutdown()

    # -- the hot loop ---------------------------------------------------------------------
    def _read(self, dump: DumpConnection, tracker: TransactionTracker) -> Iterator[Batch]:
        rendezvous = self.rendezvous
        rendezvous.running((tracker.file_index, tracker.committed.pos))
        try:
            yield from self._events(dump, tracker, rendezvous)
        finally:
            rendezvous.running(None)

    def _events(self, dump: DumpConnection, tracker: TransactionTracker,
                rendezvous: PauseRendezvous) -> Iterator[Batch]:
        read, unpack, crc = dump.read_packet, bl.HEADER.unpack_from, zlib.crc32
        checksum = dump.checksum
        stopping, out = self.context.stopping, tracker.out
        tables = self.tables
        plans: dict[int, TablePlan | None] = {}  # table id -> plan (ids are per connection)
        fmt = _DEFAULT_FORMAT
        rows_events = bl.ROWS_EVENTS
        last = tracker.committed.pos  # the end of the last event read (in tracker.file)
        while True:
            # Snapshots (see meepo_mysql.rendezvous): one attribute read per event otherwise.
            if rendezvous.wanted:
                rendezvous.point((tracker.file_index, last))
            if rendezvous.pending and not tracker.in_transaction:
                self._watermarks(tracker, last)
                if out:
                    yield from self._deliver(out, tracker, last)
            try:
                packet = read()
            except Idle:
                if stopping.is_set() or self.closed:
                    return
                # caught up with the server: deliver what is complete now
                if (batch := tracker.flush()) is not None:
                    out.append(batch)
                    yield from self._deliver(out, tracker, last)
                if dump.silent_for() > self.stall_after:
                    raise Stalled(f"nothing received for {dump.silent_for():.1f}s (heartbeat "
                                  f"{self.settings.heartbeat:g}s)") from None
                continue
            except DumpEnded:
                if self.once:
                    if rendezvous.pending and not tracker.in_transaction:
                        self._watermarks(tracker, last)
                        yield from self._deliver(out, tracker, last)
                    return
                raise ConnectionEnded("the server ended the binlog dump") from None
            timestamp, kind, server_id, size, next_pos, _ = unpack(packet, 1)
            if next_pos:  # 0 in the events the server makes up (a dump's first rotate)
                last = next_pos
            end = len(packet)
            if checksum and kind != bl.FORMAT_DESCRIPTION:
                end -= 4
                if crc(memoryview(packet)[1:end]) != int.from_bytes(packet[end:], "little"):
                    raise SourceError(
                        f"the binlog event at {tracker.file}:{next_pos - size} (type {kind}) "
                        "fails its CRC32 check: it was damaged on the way; rerun to read it "
                        "again"
                    )
            start = next_pos - size
            spec = rows_events.get(kind)
            if spec is not None:
                plan = plans.get(int.from_bytes(packet[20:26], "little"))
                if plan is None:
                    continue  # a table not followed: its rows are never decoded
                self._rows(plan, spec, packet, end, fmt, kind, tracker, timestamp, start)
                if out:
                    yield from self._deliver(out, tracker, last)
            elif kind == bl.TABLE_MAP:
                id_size = 4 if fmt.post_header(kind, 8) == 6 else 6
                table_id = int.from_bytes(packet[20:20 + id_size], "little")
                try:
                    plans[table_id] = tables.plan(packet[20 + id_size:end])
                except bl.BinlogFormatError as exc:
                    raise self._bad_event("a table map", tracker.file, start, exc) from None
                except UnsupportedColumn as exc:
                    raise SourceError(f"{exc} (table map at {tracker.file}:{start}); the "
                                      "checkpoint stays before it") from None
                tables.table_map_event(packet, fmt)
            elif kind == bl.MARIADB_GTID:
                tracker.begin_gtid(bl.parse_mariadb_gtid(packet[20:end], server_id), timestamp)
            elif kind == bl.MYSQL_GTID:
                tracker.begin_gtid(bl.parse_mysql_gtid(packet[20:end]), timestamp)
            elif kind == bl.XID or kind == bl.XA_PREPARE:
                tracker.commit(next_pos)
            elif kind == bl.QUERY or kind == bl.QUERY_COMPRESSED:
                self._query(packet[20:end], kind, fmt, tracker, timestamp, start, next_pos)
            elif kind == bl.ROTATE:
                name, position = bl.parse_rotate(packet[20:end])
                plans.clear()
                tracker.rotate(name, position, real=timestamp != 0)
                last = position
            elif kind == bl.FORMAT_DESCRIPTION:
                fmt = bl.parse_format_description(packet[20:])
            elif kind == bl.TRANSACTION_PAYLOAD:
                raise SourceError(
                    f"the binlog at {tracker.file}:{start} holds a compressed transaction "
                    "(binlog_transaction_compression), which meepo cannot decode: run SET "
                    "GLOBAL binlog_transaction_compression = OFF on the server and backfill "
                    "from there"
                )
            elif kind == bl.PARTIAL_UPDATE_ROWS:
                plan = plans.get(int.from_bytes(packet[20:26], "little"))
                if plan is not None:
                    raise SourceError(
                        f"{plan.table.qualified}: the binlog at {tracker.file}:{start} holds a "
                        "partial JSON update, whose after image is incomplete; run SET GLOBAL "
                        "binlog_row_value_options = '' on the server and backfill this table"
                    )
            else:
                continue  # heartbeats and events meepo does not act on
            if out:
                yield from self._deliver(out, tracker, last)
            if not tracker.in_transaction and stopping.is_set():
                return

    def _deliver(self, out: list[Batch], tracker: TransactionTracker, last: int
                 ) -> Iterator[Batch]:
        """Yield ``out`` (then empty it); a snapshot may pause the reader meanwhile."""
        rendezvous = self.rendezvous
        rendezvous.suspend((tracker.file_index, last))
        yield from out
        out.clear()
        rendezvous.unsuspend()

    def _watermarks(self, tracker: TransactionTracker, last: int) -> None:
        """Report the snapshot watermarks the stream has reached (see meepo_mysql.snapshot)."""
        for sequence, mark in self.rendezvous.due(tracker.file_index, last):
            tracker.watermark(mark, sequence)

    def _rows(self, plan: TablePlan, spec: tuple[str, int, bool], packet: bytes, end: int,
              fmt: bl.FormatDescription, kind: int, tracker: TransactionTracker,
              timestamp: int, start: int) -> None:
        action, version, compressed = spec
        try:
            body = parse_rows_body(packet, 20, end, action, version, compressed,
                                   fmt.post_header(kind, 10 if version == 2 else 8))
            rows = plan.decode(body, packet, fmt)
        except (RowDecodeError, bl.BinlogFormatError, IndexError, struct.error) as exc:
            raise self._bad_event(plan.table.qualified, tracker.file, start, exc) from None
        if plan.watch is not None:
            plan.watch.check(action, rows, f"{tracker.file}:{start}")
        builder = plan.builder
        if builder is None or not rows:
            return
        if tracker.committed_at is None:
            tracker.first_event(timestamp, start)
        assert tracker.committed_at is not None
        tracker.extend(builder.events(
            action, rows, {"file": tracker.file, "pos": start}, tracker.committed_at,
            tracker.txid, (tracker.file_index << 32) | start,
        ))

    def _bad_event(self, what: str, file: str, start: int, exc: BaseException) -> SourceError:
        return SourceError(
            f"{what}: cannot decode the binlog event at {file}:{start}: {exc}; the checkpoint "
            "stays before its transaction. Report it with the output of mariadb-binlog "
            f"--start-position={start} {file}, and compare with decoder = \"library\""
        )

    # -- statements -----------------------------------------------------------------------
    def _query(self, body: bytes, kind: int, fmt: bl.FormatDescription,
               tracker: TransactionTracker, timestamp: int, start: int, next_pos: int) -> None:
        try:
            schema, query = bl.parse_query(body, fmt.post_header(bl.QUERY, 13),
                                           compressed=kind == bl.QUERY_COMPRESSED)
        except bl.BinlogFormatError as exc:
            raise self._bad_event("a statement", tracker.file, start, exc) from None
        text = query.lstrip()
        if text.startswith("/*!"):  # a statement in a version comment runs: read it
            text = unwrap_versioned(text)
        if text[:1] in ("/", "#", "-") and (comments := _LEADING_COMMENTS.match(text)):
            text = text[comments.end():]  # a statement behind comments: DDL from some tools
        head = text[:12].upper()
        where = f"{tracker.file}:{start}"
        if head.startswith(("BEGIN", "XA START")):
            tracker.begin(timestamp, start)
        elif head.startswith("COMMIT") or head.startswith("XA COMMIT"):
            tracker.commit(next_pos)
        elif head.startswith("SAVEPOINT"):
            tracker.savepoint(_identifier(text[len("SAVEPOINT"):]))
        elif head.startswith("ROLLBACK TO"):
            name = text[len("ROLLBACK TO"):].lstrip()
            if name[:9].upper() == "SAVEPOINT":
                name = name[9:]
            tracker.rollback_to(_identifier(name), where)
        elif head.startswith("ROLLBACK"):
            tracker.rollback(next_pos, where)
        elif head.startswith("XA ROLLBACK"):
            self.context.metrics.record_failure("source", "xa_rolled_back")
            log.warning("%s at %s: the XA transaction's rows were delivered at its XA PREPARE "
                        "and are now rolled back; backfill the tables it changed", text[:200],
                        where)
            tracker.commit(next_pos)
        elif head.startswith("XA "):
            pass  # XA END: the transaction ends at its XA_PREPARE event
        elif not tracker.in_transaction:
            self._statement(text, schema)
            self._schema_changes(text, head, schema, tracker, start)
            tracker.commit(next_pos)
        elif head.startswith(_DDL):  # CREATE TABLE ... SELECT: its rows follow in the same
            self.tables.schema_changed(text, schema)  # transaction
            self._schema_changes(text, head, schema, tracker, start)

    def _schema_changes(self, text: str, head: str, schema: str, tracker: TransactionTracker,
                        start: int) -> None:
        """The schema change events of a DDL statement, in its place in the stream (see
        :mod:`meepo_mysql.schema_events`)."""
        if not head.startswith(_SCHEMA_STATEMENTS):
            return
        for change in self.schemas.changes(
            text, schema, position={"file": tracker.file, "pos": start},
            committed_at=tracker.committed_at, txid=tracker.txid,
            sequence=sequence_base(tracker.file_index, start),
        ):
            tracker.schema_change(change)
            if change.kind == "create" and change.renamed_from is not None \
                    and self.settings.snapshot_new_tables:
                # a filled table renamed into `tables`: its rows never were in the stream
                log.info("mysql source: snapshot of %s, renamed into tables "
                         "(snapshot_new_tables)", change.qualified_table)
                self.context.request_snapshot(change.qualified_table)

    def _statement(self, query: str, schema: str) -> None:
        """A statement outside a transaction: DDL (applied to the table definitions before
        the position after it is taken), or DML logged as a statement."""
        head = query[:8].upper()
        if head.startswith(_DDL):
            self.tables.schema_changed(query, schema)
        if head.startswith(_STATEMENT_DML):
            self.context.metrics.record_failure("source", "statement_dml_skipped")
            log.error(
                "a data change was logged as a statement, not as rows, so meepo cannot "
                "deliver it (binlog_format must be ROW): %.200s", query,
            )
        elif head.startswith("TRUNCATE"):
            self._truncated(query, schema)

    def _truncated(self, query: str, schema: str) -> None:
        """Warn (and count) a TRUNCATE of a followed table: its rows go without row events.
        One of a table the pipeline does not follow is nobody's concern; one whose name is
        not understood is warned about, to be safe."""
        name = truncated_table(query, schema)
        if name is not None and not self.settings.filter.follows(*name):
            return
        self.context.metrics.record_failure("source", "truncate_not_delivered")
        table = qualified_name(*name) if name is not None else f"(unread name) {query:.200}"
        log.warning(
            "TRUNCATE of %s removes its rows without row events: delivered as a truncate "
            "schema change, so sinks that do not follow schema changes keep them until a "
            "backfill (meepo snapshot)", table,
        )


def _identifier(text: str) -> str:
    """A savepoint name as the server logs it (backquoted), compared case-insensitively."""
    match = _IDENTIFIER.match(text)
    name = match.group(1).replace("``", "`") if match else text.strip()
    return name.lower()

