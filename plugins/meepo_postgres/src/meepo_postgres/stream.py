"""Reading the replication stream: pgoutput messages to batches, feedback, reconnects.

One :class:`ReplicationStream` follows one slot. It starts replication at the last
transaction boundary it has seen, turns Insert/Update/Delete messages into
:class:`~meepo_core.RowEvent` s and groups them with a :class:`~meepo_core.Batcher`; a
position is produced only at a Commit (or, while nothing of this pipeline is written,
at the server's WAL end), so checkpoints never fall inside a transaction.

The slot's confirmed position moves only in :meth:`ReplicationStream.acknowledge`,
which the runner calls after a checkpoint. While idle, the server's WAL end (asked for
with a reply request every ``heartbeat`` seconds) becomes a position, so the checkpoint,
and with it the slot, follows WAL written by other databases and tables instead of
holding it.

When the connection drops, stalls (no byte for 2.5 heartbeats although a reply was
asked for) or the server restarts, the committed part of the current batch is delivered,
the open transaction's rest is dropped, and replication restarts from the last boundary
after an exponential backoff; the server then sends that transaction again in full.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg2

from meepo_core import (
    Batch,
    Batcher,
    PipelineContext,
    RowEvent,
    SchemaChange,
    SourceError,
    backoff_delay,
    describe_error,
)

from .catalog import Catalog
from .config import PostgresSettings
from .connections import connect_error, connect_replication, error_text
from .decoders import Fallback, RowDecoder, compile_decoders
from .pgoutput import (
    BEGIN,
    COMMIT,
    DELETE,
    INSERT,
    KEY_TUPLE,
    MESSAGE,
    OLD_TUPLE,
    RELATION,
    TRUNCATE,
    UPDATE,
    ProtocolError,
    parse_begin,
    parse_commit,
    parse_message,
    parse_relation,
    parse_truncate,
    pg_time,
    read_tuple,
    relation_oid,
)
from .positions import SEQUENCE_LIMIT, WalPosition, format_lsn, sequence_base
from .relations import TablePlan, build_plan, fill_unchanged
from .schema_tracking import SchemaTracker
from .server import ControlConnection, dropped_slot_message, invalidated_slot_message
from .slots import ensure_publication
from .snapshot import MESSAGES_VERSION, WATERMARK_PREFIX
from .values import ValueTooDeep

log = logging.getLogger("meepo.postgres")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 30.0  # seconds a connection must last to reset the reconnect budget
TICK = 0.2  # longest wait for the socket, so stop requests are seen promptly
PROTOCOL_VERSION = "1"


class Stalled(Exception):
    """Nothing arrived for too long although the server was asked to reply."""


class ReplicationStream:
    """Streams batches from a transaction boundary; see the module docstring."""

    def __init__(
        self,
        settings: PostgresSettings,
        control: ControlConnection,
        context: PipelineContext,
        *,
        slot: str,
        publication: str,
        once_until: int | None,
        known_tables: set[tuple[str, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.context = context
        self.slot = slot
        self.publication = publication
        #: With ``once``: the WAL position up to which everything must be read.
        self.once_until = once_until
        self.filter = settings.filter
        self.catalog = Catalog(control)
        #: Schema changes from Relation messages; tables not in ``known_tables`` (followed
        #: when the source started) are new when first seen.
        self.schemas = SchemaTracker(control, set(known_tables or ()), settings.filter)
        self.control = control
        self._last_discovery = time.monotonic()
        self.messages = control.version >= MESSAGES_VERSION
        self.heartbeat = settings.heartbeat
        self.stall_after = settings.heartbeat * 2.5
        self.closed = False
        self.committed = WalPosition(0)  # last transaction boundary seen
        self._lock = threading.Lock()  # guards the connection: stream thread vs acknowledge
        self._conn: Any = None
        self._cursor: Any = None
        self._acked = 0
        self._progress = False
        self._last_receipt = 0.0
        self._last_request = 0.0
        self._plans: dict[int, TablePlan] = {}
        self._batcher = Batcher(context.batch_size, context.batch_wait)

    # -- public -------------------------------------------------------------------------
    def batches(self, start: WalPosition) -> Iterator[Batch]:
        """Batches from ``start`` until caught up (``once``), stopped, or a fatal error."""
        self.committed = start
        failures = 0
        stopping = self.context.stopping
        while not self.closed and not stopping.is_set():
            self._progress = False
            opened = time.monotonic()
            try:
                self._open()
                yield from self._read()
                if (batch := self._batcher.flush()) is not None:
                    yield batch
                return  # the connection stays open for the last acknowledge; see close()
            except (Stalled, psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                if self.closed:
                    return
                self._raise_if_fatal(exc)
                error: BaseException = exc
            except psycopg2.Error as exc:
                if self.closed:
                    return
                self._raise_if_fatal(exc)
                if exc.pgcode is None:  # not the server's error: the stream ended (shutdown)
                    error = exc
                else:
                    raise SourceError(
                        f"replication from PostgreSQL at {self.settings.address} failed: "
                        f"{error_text(exc)}"
                    ) from exc
            self._disconnect()
            # Deliver what committed; the open transaction comes again from the boundary.
            if (batch := self._batcher.flush()) is not None:
                yield batch
            self._batcher = Batcher(self.context.batch_size, self.context.batch_wait)
            healthy = self._progress or time.monotonic() - opened > HEALTHY_AFTER
            failures = 1 if healthy else failures + 1
            resume = format_lsn(self.committed.lsn)
            if failures > self.settings.reconnect_attempts:
                raise SourceError(
                    f"lost the replication stream from PostgreSQL at {self.settings.address} "
                    f"and {failures - 1} reconnects failed: {describe_error(error)}; rerun to "
                    f"resume from {resume}"
                ) from error
            delay = backoff_delay(failures, BACKOFF_FIRST, BACKOFF_MAX)
            log.warning(
                "replication stream from %s lost (%s); reconnecting in %.1fs from %s "
                "(attempt %d of %d)", self.settings.address, describe_error(error), delay, resume,
                failures, self.settings.reconnect_attempts,
            )
            if stopping.wait(delay):
                return

    def acknowledge(self, lsn: int) -> None:
        """Confirm to the server that everything before ``lsn`` (a checkpointed position)
        is consumed, so the slot may release that WAL. Callable from any thread.

        Once every message received is confirmed, psycopg2 (2.9) moves the confirmed
        position on by itself to the WAL end of each server keepalive: everything before a
        keepalive has been sent, so that WAL holds nothing more for this slot. A server
        shutdown waits for exactly that confirmation.
        """
        if lsn <= self._acked:
            return
        with self._lock:
            self._acked = lsn
            self._send_feedback()

    def close(self) -> None:
        """Stop reading and close the connection (callable from another thread)."""
        self.closed = True
        self._disconnect()

    # -- connection -----------------------------------------------------------------------
    def _open(self) -> None:
        try:
            conn = connect_replication(self.settings)
        except psycopg2.OperationalError as exc:
            error, retryable = connect_error(self.settings, exc)
            if not retryable:
                raise error from exc
            raise
        cursor = conn.cursor()
        publication = '"' + self.publication.replace('"', '""') + '"'
        options = {"proto_version": PROTOCOL_VERSION, "publication_names": publication}
        if self.messages:  # snapshot watermarks
            options["messages"] = "true"
        cursor.start_replication(
            slot_name=self.slot, decode=False, start_lsn=self.committed.lsn,
            options=options, status_interval=self.heartbeat,
        )
        with self._lock:
            self._conn, self._cursor = conn, cursor
            self._send_feedback()
        self._last_receipt = self._last_request = time.monotonic()
        log.debug("replication from slot %s started at %s", self.slot,
                  format_lsn(self.committed.lsn))

    def _send_feedback(self) -> None:
        """Report the acknowledged position (the caller holds the lock)."""
        if self._cursor is None or not self._acked:
            return
        try:
            self._cursor.send_feedback(write_lsn=self._acked, flush_lsn=self._acked, force=True)
        except psycopg2.Error as exc:  # the next connection confirms it
            log.debug("could not confirm %s to the server: %s", format_lsn(self._acked), exc)

    def _disconnect(self) -> None:
        with self._lock:
            conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def _raise_if_fatal(self, exc: BaseException) -> None:
        if isinstance(exc, Stalled):
            return
        text = error_text(exc)
        lowered = text.lower()
        code = getattr(exc, "pgcode", None)
        if "replication slot" in lowered and "does not exist" in lowered:
            raise SourceError(dropped_slot_message(self.slot, self.committed.lsn)) from exc
        if "can no longer get changes" in lowered or "invalidated" in lowered:
            raise SourceError(invalidated_slot_message(self.slot)) from exc
        if "publication" in lowered and "does not exist" in lowered:
            raise SourceError(
                f"{text}: the publication was dropped (or created after the changes being "
                f"read); recreate it, or set {self.settings.key_path}.publication, then run "
                "meepo check"
            ) from exc
        if code == "42501" or "must be superuser or replication role" in lowered:
            raise SourceError(
                f"PostgreSQL at {self.settings.address} denied replication to "
                f"{self.settings.user!r}: {text}; run meepo check for the fix"
            ) from exc

    # -- the hot loop ---------------------------------------------------------------------
    def _read(self) -> Iterator[Batch]:
        cursor = self._cursor
        read = cursor.read_message
        lock = self._lock
        batcher = self._batcher
        add = batcher.add
        stopping = self.context.stopping
        plans = self._plans
        plans.clear()  # the server describes each relation again in a new session
        #: A followed relation's generated decoders, by the first 5 bytes of its row
        #: messages: the kind byte and the relation OID.
        decoders: dict[bytes, RowDecoder] = {}
        schemas = self.schemas
        schemas.new_session()
        in_trx = False
        base = count = 0
        committed_at: datetime = pg_time(0)  # set by each Begin before any change
        txid: str | None = None
        monotonic = time.monotonic
        idle_since = monotonic()
        high, prefix = -1, ""  # the LSN's high half and its text, kept: formatting is costly
        while True:
            with lock:
                message = read()
            if message is None:
                if stopping.is_set() or self.closed:
                    return
                if not in_trx:
                    if (batch := batcher.flush()) is not None:
                        yield batch
                    if found := self._new_tables():
                        yield Batch((), None, schema_changes=tuple((0, c) for c in found))
                    if (batch := self._idle_position(idle_since)) is not None:
                        idle_since = time.monotonic()
                        yield batch
                    if self._caught_up(cursor.wal_end):
                        return
                self._wait(cursor)
                continue
            self._last_receipt = monotonic()
            data = message.payload
            fast = decoders.get(data[:5])  # the kind byte and the relation OID
            if fast is not None:  # a row of a followed table
                seq = base + count
                count += 1
                lsn = message.data_start
                if lsn >> 32 != high:
                    high = lsn >> 32
                    prefix = f"{high:X}/"
                where = {"lsn": prefix + "%X" % (lsn & 0xFFFFFFFF)}
                try:
                    event = fast(data, where, committed_at, txid, seq)
                except (Fallback, ValueTooDeep):  # another shape, or a value to dead-letter
                    decoded = self._decode_row(data[0], data, plans[relation_oid(data)], where,
                                               committed_at, txid, seq)
                    if decoded is None:
                        continue
                    event = decoded
                if (batch := add(event)) is not None:
                    yield batch
                continue
            kind = data[0]
            if kind in (INSERT, UPDATE, DELETE):  # of a table left out: not decoded
                count += 1
                oid = relation_oid(data)
                if oid not in plans:
                    raise ProtocolError(f"a change of relation {oid} came before its Relation")
            elif kind == BEGIN:
                begin = parse_begin(data)
                base = sequence_base(begin.final_lsn, self.committed.sequence)
                if base >= SEQUENCE_LIMIT - 2**32:
                    raise SourceError(
                        f"the commit LSN {format_lsn(begin.final_lsn)} is past what the row "
                        "sequence can number (2**50 bytes of WAL)"
                    )
                count = 0
                committed_at = begin.committed_at
                txid = str(begin.xid)
                in_trx = True
            elif kind == COMMIT:
                commit = parse_commit(data)
                last = base + count - 1 if count else self.committed.sequence
                self.committed = WalPosition(commit.end_lsn, last)
                self._progress = True
                in_trx = False
                idle_since = time.monotonic()
                for change in self._new_tables():  # also when never idle
                    batcher.schema_change(change)
                batch = batcher.commit(self.committed.to_json())
                if batch is not None:
                    yield batch
                if stopping.is_set():
                    return
            elif kind == RELATION:
                relation = parse_relation(data)
                plan = plans[relation.oid] = build_plan(relation, self.filter, self.catalog)
                oid_bytes = data[1:5]
                for row_kind in (INSERT, UPDATE, DELETE):
                    decoders.pop(bytes((row_kind,)) + oid_bytes, None)
                if plan.followed:
                    for row_kind, decode in compile_decoders(plan).items():
                        decoders[bytes((row_kind,)) + oid_bytes] = decode
                    where = {"lsn": format_lsn(message.data_start)}
                    seen = schemas.observe(relation, plan, where, committed_at, txid,
                                           base + count)
                    if seen is not None:  # before the first row of the new shape
                        batcher.schema_change(seen)
                        if seen.kind == "create":
                            self._copy_if_asked(seen.qualified_table)
            elif kind == TRUNCATE:
                where = {"lsn": format_lsn(message.data_start)}
                self._truncate(data, plans, where, committed_at, txid, base + count)
            elif kind == MESSAGE:
                note = parse_message(data)
                if note.prefix == WATERMARK_PREFIX:
                    batcher.watermark(note.content.decode(), base + count, committed_at)
                    count += 1
            # Type and Origin: nothing to deliver.

    def _decode_row(
        self, kind: int, data: bytes, plan: TablePlan, where: dict[str, Any],
        committed_at: datetime, txid: str | None, seq: int,
    ) -> RowEvent | None:
        """The reference decoding of a row message (:func:`read_tuple` and the plan's
        methods), which the generated decoders must match: any shape, old rows included.
        ``None`` when the row went to the dead-letter store (a value too deep)."""
        converters = plan.converters
        row_event = RowEvent.trusted  # actions are literals, committed_at is UTC-aware
        try:
            if kind == INSERT:
                values = read_tuple(data, 6, converters)[0]
                return row_event(
                    plan.schema, plan.table, "write", plan.pk(values), None,
                    plan.image(values), where, committed_at, txid, seq, plan.pk_columns,
                    definition=plan.definition,
                )
            if kind == UPDATE:
                marker = data[5]
                if marker in (KEY_TUPLE, OLD_TUPLE):
                    old, pos = read_tuple(data, 6, converters)
                    values = read_tuple(data, pos + 1, converters)[0]
                    if marker == OLD_TUPLE:
                        fill_unchanged(values, old)
                        before = plan.image(old)
                    else:
                        before = plan.identity_image(old)
                else:
                    values = read_tuple(data, 6, converters)[0]
                    before = plan.identity_image(values)
                return row_event(
                    plan.schema, plan.table, "update", plan.pk(values), before,
                    plan.image(values), where, committed_at, txid, seq, plan.pk_columns,
                    definition=plan.definition,
                )
            old = read_tuple(data, 6, converters)[0]
            before = plan.image(old) if data[5] == OLD_TUPLE else plan.identity_image(old)
            return row_event(
                plan.schema, plan.table, "delete", plan.pk(old), before, None, where,
                committed_at, txid, seq, plan.pk_columns, definition=plan.definition,
            )
        except ValueTooDeep as exc:
            self._dead_letter_row(kind, data, plan, where, committed_at, txid, seq, exc)
            return None

    def _dead_letter_row(
        self, kind: int, data: bytes, plan: TablePlan, where: dict[str, Any],
        committed_at: datetime, txid: str | None, seq: int, error: ValueTooDeep,
    ) -> None:
        """A row with a value too deep to decode goes to the dead-letter store, such values
        kept as the server's text, and the stream goes on: one bad value must not stop it."""
        converters = list(plan.converters)
        columns = [plan.columns[error.column] if error.column is not None else "?"]
        if error.column is not None:
            converters[error.column] = None
        while True:  # until no column is too deep (each round takes one more as text)
            try:
                pos = 6
                if kind == UPDATE and data[5] in (KEY_TUPLE, OLD_TUPLE):
                    pos = read_tuple(data, 6, converters)[1] + 1
                values = read_tuple(data, pos, converters)[0]
                break
            except ValueTooDeep as again:
                if again.column is None or converters[again.column] is None:
                    raise
                converters[again.column] = None
                columns.append(plan.columns[again.column])
        image = plan.image(values)
        if kind == DELETE:
            event = RowEvent.trusted(plan.schema, plan.table, "delete", plan.pk(values), image,
                                     None, where, committed_at, txid, seq, plan.pk_columns)
        else:
            event = RowEvent.trusted(
                plan.schema, plan.table, "write" if kind == INSERT else "update",
                plan.pk(values), None, image, where, committed_at, txid, seq, plan.pk_columns,
            )
        self.context.dead_letter(
            event, "source",
            f"column {', '.join(dict.fromkeys(columns))} of {plan.qualified} at lsn "
            f"{where['lsn']}: {error}; the row is not delivered (the event holds that value as "
            "text): store it less deeply nested, or leave the column out with "
            f"{self.settings.key_path}.columns",
        )

    def _truncate(
        self, data: bytes, plans: dict[int, TablePlan], where: dict[str, str],
        committed_at: datetime, txid: str | None, sequence: int,
    ) -> None:
        """Deliver a TRUNCATE as ``truncate`` schema changes."""
        truncate = parse_truncate(data)
        for oid in truncate.relation_oids:
            plan = plans.get(oid)
            if plan is None or not plan.followed:
                continue
            self._batcher.schema_change(
                self.schemas.truncated(oid, plan, where, committed_at, txid, sequence))
            self.context.metrics.record_failure("source", "truncate_not_delivered")
            log.warning(
                "TRUNCATE of %s removes rows without row events: delivered as a truncate "
                "schema change, so sinks that do not follow schema changes keep them until a "
                "backfill (counted as truncate_not_delivered)", plan.qualified,
            )

    # -- while idle -----------------------------------------------------------------------
    def _new_tables(self) -> list[SchemaChange]:
        """Once per heartbeat: tables that started to match ``tables`` since the source
        started (created, renamed into the pattern). A publication meepo manages gets them
        at once, so their rows stream from here on; each is announced by a ``create``
        schema change, and with ``snapshot_new_tables`` the rows it holds already are
        copied by a snapshot."""
        if time.monotonic() - self._last_discovery < self.heartbeat:
            return []
        self._last_discovery = time.monotonic()
        known = self.schemas.known_at_start
        tables = self.control.tables(self.filter)
        fresh = [t for t in tables if (t.schema, t.name) not in known and t.publishable]
        if not fresh:
            return []
        ensure_publication(self.control, self.publication, tables)
        changes = []
        for table in fresh:
            change = self.schemas.discovered(table.schema, table.name, table.replica_identity,
                                             self.catalog, self.committed.sequence)
            if change is not None:
                log.info("postgres source: %s matches tables now; following it",
                         table.qualified)
                changes.append(change)
                self._copy_if_asked(table.qualified)
        return changes

    def _copy_if_asked(self, table: str) -> None:
        if self.settings.snapshot_new_tables:
            log.info("postgres source: snapshot of new table %s (snapshot_new_tables)", table)
            self.context.request_snapshot(table)

    def _idle_position(self, idle_since: float) -> Batch | None:
        """The server's WAL end as a position, once per heartbeat while nothing of this
        pipeline arrives; everything before it has been sent (see the module docstring)."""
        wal_end = int(self._cursor.wal_end)
        once_done = self._caught_up(wal_end)
        if wal_end <= self.committed.lsn:
            return None
        if not once_done and time.monotonic() - idle_since < self.heartbeat:
            return None
        self.committed = WalPosition(wal_end, self.committed.sequence)
        return Batch((), self.committed.to_json())

    def _caught_up(self, wal_end: int) -> bool:
        return self.once_until is not None and wal_end >= self.once_until

    def _wait(self, cursor: Any) -> None:
        """Wait up to one tick for bytes; ask the server for a reply when it has been
        silent for a heartbeat (at once with ``once``), and raise :class:`Stalled` when
        even that brings nothing."""
        now = time.monotonic()
        silent = now - self._last_receipt
        if silent > self.stall_after:
            raise Stalled(f"nothing received for {silent:.1f}s (heartbeat {self.heartbeat:g}s)")
        interval = TICK if self.once_until is not None else self.heartbeat
        if silent >= interval and now - self._last_request >= interval:
            with self._lock:
                cursor.send_feedback(reply=True)
            self._last_request = now
        try:
            readable, _, _ = select.select([cursor.connection], [], [], TICK)
        except (OSError, ValueError) as exc:
            if self.closed:
                return
            raise psycopg2.InterfaceError(f"socket wait failed: {exc}") from exc
        if readable:
            self._last_receipt = time.monotonic()


# The core's one-line error texts use the server's own words for its errors.
describe_error.register(psycopg2.Error, error_text)
