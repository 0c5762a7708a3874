"""Transaction boundaries, GTIDs, savepoints and rollbacks in the binlog stream.

:class:`TransactionTracker` sees every event that opens, ends or rewinds a transaction
and owns what follows from them: the GTID state (the server is asked for it once, at
start), each transaction's ``txid`` and commit time, the position after its last event
(the only place a checkpoint may land) and which of its rows are delivered.

What the binlog holds, and what is delivered (row format):

* ``GTID``/``BEGIN`` ... ``XID`` or ``COMMIT``: one transaction, one position at its end.
* ``SAVEPOINT s`` ... ``ROLLBACK TO s``: MariaDB keeps rolled-back rows in the binlog when
  the transaction also changed a non-transactional table (or created a temporary
  table). Those rows are dropped; the transaction goes on and ends with one position.
* ``BEGIN`` ... ``ROLLBACK``: a transaction logged although it rolled back (same causes):
  its rows are dropped and the position moves past it.
* Changes to non-transactional tables (MyISAM, Aria) are logged, in row format, as their
  own ``BEGIN`` ... ``COMMIT`` group when each statement ends, even inside a
  transaction that later rolls back: they are delivered, since they happened.
* XA: the rows are delivered at ``XA PREPARE`` (the binlog holds them there); a later
  ``XA ROLLBACK`` of a prepared transaction is logged and counted (``xa_rolled_back``).

Rows are held until their transaction ends, up to ``hold_limit`` rows (the batch size);
past that the oldest go to the batcher, which cuts a huge transaction into position-less
batches, so memory stays bounded. A rollback that reaches back past rows already passed
on cannot take them back: that is logged with the fix and counted
(``rolled_back_rows_delivered``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from meepo_core import Batch, Batcher, PipelineContext, RowEvent, SchemaChange

from .binlog import Gtid
from .control_connection import ControlConnection
from .positions import BinlogPosition, MariaDBGtidState, MySQLGtidState, file_index
from .schema_history import SchemaHistory

log = logging.getLogger("meepo.mysql")

GtidState = MariaDBGtidState | MySQLGtidState


def starting_state(
    control: ControlConnection, start: BinlogPosition, gtid_mode: bool
) -> tuple[BinlogPosition, GtidState | None]:
    """``start`` with the GTID state it stands for, and that state to grow from it.

    MariaDB keeps a GTID state for every binlog position; when a file/pos start has
    none yet, it is asked for it here, once (``BINLOG_GTID_POS``). MySQL's executed set
    is known only in GTID mode.
    """
    if control.flavor == "mariadb":
        text = start.gtid
        if text is None and start.file:
            text = control.mariadb_gtid_at(start.file, start.pos)  # "" before any GTID
            start = BinlogPosition(start.file, start.pos, text or None)
        return start, MariaDBGtidState(text) if text is not None else None
    if gtid_mode and start.gtid:
        return start, MySQLGtidState(start.gtid)
    return start, None


class TransactionTracker:
    """See the module docstring. Methods that may complete batches append them to
    :attr:`out`, which the caller empties."""

    def __init__(self, context: PipelineContext, gtids: GtidState | None,
                 start: BinlogPosition, history: SchemaHistory | None = None) -> None:
        self.context = context
        self.gtids = gtids
        self.history = history  # its state at each boundary goes into the position
        self._position: dict[str, Any] = start.to_json()  # the last transaction boundary
        if history is not None and history.state is not None:
            self._position["types"] = history.state
        self.file = start.file
        self.file_index = file_index(start.file) if start.file else 0
        self.batcher = Batcher(context.batch_size, context.batch_wait)
        self.hold_limit = max(1, context.batch_size)
        self.out: list[Batch] = []
        self.progress = False  # a transaction ended since the last reconnect
        self._reset()

    def _reset(self) -> None:
        self.in_transaction = False
        self.gtid: str | None = None
        self.txid: str | None = None
        self.committed_at: datetime | None = None
        self._held: list[RowEvent] = []
        self._released = 0  # rows of this transaction already passed to the batcher
        self._savepoints: dict[str, int] = {}  # name -> rows of the transaction before it

    # -- opening -------------------------------------------------------------------------
    def begin_gtid(self, gtid: Gtid, timestamp: int) -> None:
        """A GTID event: the next transaction's id; MariaDB's standalone flag marks a
        single statement (DDL) that ends with its own query event."""
        self._reset()
        self.gtid = self.txid = gtid.text
        self.committed_at = datetime.fromtimestamp(timestamp, UTC)
        self.in_transaction = not gtid.standalone

    def begin(self, timestamp: int, start: int) -> None:
        """``BEGIN`` or ``XA START``."""
        self.in_transaction = True
        self.first_event(timestamp, start)

    def first_event(self, timestamp: int, start: int) -> None:
        """Commit time and txid for transactions without a GTID event (MySQL without
        GTIDs): from their first event."""
        if self.committed_at is None:
            self.committed_at = datetime.fromtimestamp(timestamp, UTC)
        if self.txid is None:
            self.txid = f"{self.file}:{start}"

    # -- rows ----------------------------------------------------------------------------
    def extend(self, events: list[RowEvent]) -> None:
        """Rows of the open transaction, held until it ends or ``hold_limit`` is passed."""
        held = self._held
        held += events
        if len(held) >= 2 * self.hold_limit:
            self._release(len(held) - self.hold_limit)

    def _release(self, count: int) -> None:
        add, out = self.batcher.add, self.out
        for event in self._held[:count]:
            batch = add(event)
            if batch is not None:
                out.append(batch)
        del self._held[:count]
        self._released += count

    def schema_change(self, change: SchemaChange) -> None:
        """A schema change of the open transaction (or of the DDL statement that is its own
        transaction), placed after every row before it."""
        if self._held:
            self._release(len(self._held))
        self.batcher.schema_change(change)

    # -- savepoints and rollbacks ------------------------------------------------------------
    def savepoint(self, name: str) -> None:
        self._savepoints[name] = self._released + len(self._held)

    def rollback_to(self, name: str, where: str) -> None:
        """``ROLLBACK TO s``: drop the rows since ``SAVEPOINT s`` (and later savepoints)."""
        mark = self._savepoints.get(name)
        if mark is None:  # the SAVEPOINT came before where this stream started
            mark = 0
        self._savepoints = {k: v for k, v in self._savepoints.items() if v <= mark}
        self._drop_from(mark, where, f"ROLLBACK TO {name}")

    def _drop_from(self, mark: int, where: str, statement: str) -> None:
        kept = max(0, mark - self._released)
        del self._held[kept:]
        delivered = self._released - mark
        if delivered > 0:
            self.context.metrics.record_failure("source", "rolled_back_rows_delivered", delivered)
            log.error(
                "%s at %s rolls back %d rows of transaction %s that were already passed on "
                "(it had more than %d rows); sinks hold rows that never committed: backfill "
                "the tables of that transaction, or raise batch_size above its size",
                statement, where, delivered, self.txid, self.hold_limit,
            )

    # -- closing ----------------------------------------------------------------------------
    def commit(self, next_pos: int) -> None:
        """The transaction ended at ``next_pos``: pass its rows on with the position."""
        if self._held:
            self._release(len(self._held))
        self._close(next_pos)

    def rollback(self, next_pos: int, where: str) -> None:
        """``ROLLBACK`` ends a logged transaction: its rows are dropped."""
        self._drop_from(0, where, "ROLLBACK")
        self._close(next_pos)

    def _close(self, next_pos: int) -> None:
        self.progress = True
        gtids = self.gtids
        position: dict[str, Any] = {"file": self.file, "pos": next_pos}  # to_json() form
        if gtids is not None:
            if self.gtid is not None:
                gtids.update(self.gtid)
            text = str(gtids)
            if text:
                position["gtid"] = text
        if self.history is not None and (types := self.history.state) is not None:
            position["types"] = types
        self._position = position
        batch = self.batcher.commit(position)
        if batch is not None:
            self.out.append(batch)
        self._reset()

    def watermark(self, mark: str, sequence: int) -> None:
        """A snapshot watermark at the current transaction boundary: its own empty
        transaction, ending at the last boundary's position."""
        self.batcher.watermark(mark, sequence, datetime.now(UTC))
        batch = self.batcher.commit(self._position)
        if batch is not None:
            self.out.append(batch)

    @property
    def committed(self) -> BinlogPosition:
        """The last transaction boundary: where a new dump starts."""
        position = self._position
        return BinlogPosition(position["file"], position["pos"], position.get("gtid"))

    def rotate(self, file: str, position: int, real: bool) -> None:
        """The stream continues in ``file``; a real rotation outside a transaction moves
        the boundary into the new file (so purging the old one cannot strand a quiet
        pipeline)."""
        self.file = file
        self.file_index = file_index(file)
        if real and not self.in_transaction and not self._held and \
                not self.batcher.in_transaction:
            self._close(position)

    def flush(self) -> Batch | None:
        """What is complete, e.g. when caught up with the server or the connection broke."""
        return self.batcher.flush()

    def restart(self) -> None:
        """After a lost connection: the open transaction comes again from the boundary."""
        self.batcher = Batcher(self.context.batch_size, self.context.batch_wait)
        self.file = self.committed.file
        self.file_index = file_index(self.file) if self.file else 0
        self.progress = False
        self._reset()
