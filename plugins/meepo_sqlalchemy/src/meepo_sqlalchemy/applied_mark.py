"""The ``sql`` sink's applied mark: the highest event ``sequence`` one sink has committed to
its target, kept in the target (table ``meepo_sql_progress``) in the same transaction as
the rows.

Why it exists: delivery is at-least-once, so after a crash the source replays the events
after the last checkpoint, which the target may already hold. Replaying them is harmless
except for *patches* (events with unchanged values the source did not send, such as
PostgreSQL TOAST columns): a patch needs the stored row, and when a later event of the
replayed range deleted that row (or moved it to another key), the replayed patch finds
nothing. Without the mark such a patch looks exactly like a real gap (a row never copied
into the target) and would be dead-lettered with "backfill", though nothing is missing.

The rule: an event at or below the mark was applied once already, in a transaction that
also committed the mark, and its outcome was decided then: it patched the row, or its row
was missing and it was dead-lettered (the dead letter is written before that commit). So a
replayed patch whose row is gone now was superseded by a later event of the replayed range;
the sink skips it and counts it (``replayed_patch_row_gone``). A patch above the mark whose
row is missing is a real gap and is dead-lettered as before.

Why not look ahead for the delete instead: the delete that explains a replayed patch may be
in any later batch of the replayed range, which the sink does not have yet; holding the
patch back until then would lose its dead letter if the process died meanwhile, and nothing
tells the sink where the replayed range ends. The mark is exact, durable with the rows, and
costs one small upsert per batch.

Each sink keeps its own row, keyed by the pipeline's identity and a digest of its target and
mapping, so two sinks or two pipelines writing to one database do not share a mark. The rule
holds for a stream in ``sequence`` order, as one source read by one runner is; it does not
for ``kafka`` workers sharing a topic's partitions (each sees the sequences of its own
partitions, and they share one mark): a patch of a missing row that a worker reads before
its first event above the mark is taken for a replay there. A target where the
table cannot be created (no CREATE privilege) works without the mark: every patch whose row
is missing is dead-lettered, as before, with one warning saying so.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from sqlalchemy import BigInteger, Column, Connection, MetaData, String, Table, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from .upsert import upsert_statement

log = logging.getLogger("meepo.sql")

#: The table holding every sink's mark in the target database.
TABLE_NAME = "meepo_sql_progress"


class AppliedMark:
    """The mark of one sink: read once from the target, then kept up to date in memory
    (only this sink writes its row)."""

    def __init__(self, pipeline: str, identity: str, schema: str | None) -> None:
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        self.key = f"{pipeline[:200]} {digest}"
        self.table = Table(
            TABLE_NAME, MetaData(),
            Column("sink", String(255), primary_key=True),
            Column("applied_sequence", BigInteger, nullable=False),
            schema=schema,
        )
        self.value: int | None = None
        self.enabled = True
        self._replaying = True
        self.loaded = False

    def load(self, conn: Connection) -> None:
        """Create the table if missing and read this sink's mark (once). Raises what a lost
        connection raises; a refusal (no privilege) disables the mark with a warning."""
        if self.loaded or not self.enabled:
            return
        try:
            with conn.begin():
                self.table.create(conn, checkfirst=True)
                self.value = conn.scalar(
                    select(self.table.c.applied_sequence).where(self.table.c.sink == self.key)
                )
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            self.enabled = False
            log.warning(
                "cannot keep the applied mark in table %s of the target (%s): after a crash, "
                "a replayed update of a row deleted later in the replay is dead-lettered as "
                "if the row were missing; grant CREATE to avoid that",
                TABLE_NAME, str(exc).strip().splitlines()[0],
            )
        self.loaded = True

    def replayed(self, sequence: int | None) -> bool:
        """Whether the event with ``sequence`` was committed to the target before: it is at
        or below the mark, and no event above the mark came since this sink started (a
        replay is the head of the stream; once past it, nothing at or below the mark can be
        new to the target only in a stream in sequence order, see the module docstring)."""
        return (sequence is not None and self.value is not None and self._replaying
                and sequence <= self.value)

    def record(self, conn: Connection, sequences: Iterable[int | None]) -> int | None:
        """Raise the mark to the highest of ``sequences`` inside the batch's transaction;
        returns the new mark, to :meth:`committed` once the transaction committed."""
        if not self.enabled:
            return None
        highest = max((s for s in sequences if s is not None), default=None)
        if highest is None or (self.value is not None and highest <= self.value):
            return None
        self._replaying = False  # past the replay: see replayed()
        stmt = upsert_statement(conn.dialect.name, self.table, ["sink", "applied_sequence"],
                                "applied_sequence")
        if stmt is None:
            raise SQLAlchemyError(f"no upsert for dialect {conn.dialect.name}")
        conn.execute(stmt, {"sink": self.key, "applied_sequence": highest})
        return highest

    def committed(self, value: int | None) -> None:
        if value is not None and (self.value is None or value > self.value):
            self.value = value
