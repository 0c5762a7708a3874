"""The ``postgres`` source type: PostgreSQL logical replication (pgoutput) to row events."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Self

import psycopg2

from meepo_core import (
    Batch,
    DroppedColumns,
    Options,
    PipelineContext,
    Position,
    Source,
    SourceError,
    TableDefinition,
)

from .catalog import table_definition
from .config import OPTIONS, PostgresSettings, parse_settings
from .positions import WalPosition, format_lsn
from .server import (
    ControlConnection,
    SlotState,
    dropped_slot_message,
    invalidated_slot_message,
    table_problems,
)
from .slots import created_slot, ensure_publication, publication_problems
from .snapshot import PostgresSnapshots
from .stream import ReplicationStream

log = logging.getLogger("meepo.postgres")


class PostgresSource(Source):
    """Follows one database through a logical replication slot with the pgoutput plugin.

    Contract: one event per changed row, in commit order; batches end on commits (a huge
    transaction is cut into position-less batches, only its last one carries a position);
    positions are ``{"lsn", "sequence"}`` (see :mod:`meepo_postgres.positions`);
    ``RowEvent.sequence`` grows strictly with commit order; ``committed_at`` is the commit
    time (UTC) and ``txid`` the transaction id. The slot's confirmed position moves only
    in :meth:`acknowledge`, after the runner's checkpoint.
    """

    OPTIONS = OPTIONS  # declared in .config, where they are read
    yields_fresh_events = True  # decoded for this run, held nowhere else
    snapshots: PostgresSnapshots  # its snapshot methods delegate to it (Source.snapshots)
    # Watermarks are logical decoding messages, which every slot decodes: the one way to
    # miss them is to write them before the stream's start position was fixed.
    lost_watermarks_hint = (
        "they were written before the stream's start position was fixed (the replication "
        "connection started late: a slow connection, or a new slot waiting for open "
        "transactions); nothing of those chunks was delivered: rerun, the stream then starts "
        "at the saved checkpoint, before the snapshot's next watermarks"
    )

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self.snapshots = PostgresSnapshots(settings)
        self._control: ControlConnection | None = None
        self._stream: ReplicationStream | None = None
        self._acknowledged: int | None = None  # before the stream exists
        self._start_fixed = False  # see snapshot_ready

    @classmethod
    def from_options(cls, options: Options) -> Self:
        return cls(parse_settings(options))

    def check(self) -> list[str]:
        control = ControlConnection(self.settings)
        try:
            blocking, advisory = self._problems(control, "check")
            return blocking + advisory
        finally:
            control.close()

    def table_columns(self) -> dict[str, list[str]] | None:
        flt = self.settings.filter
        sql = ("SELECT table_schema, table_name, column_name FROM information_schema.columns "
               "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")
        schemas = flt.schemas()
        if schemas is not None:
            sql += " AND table_schema = ANY(%s)"
        control = ControlConnection(self.settings)
        try:
            rows = control.query(sql + " ORDER BY table_schema, table_name, ordinal_position",
                                 *([schemas] if schemas is not None else []))
        finally:
            control.close()
        return flt.visible_columns(rows)

    def table_definitions(self) -> list[TableDefinition] | None:
        """The followed tables' definitions as the events carry them: the visible columns
        (after the ``columns`` rules) and the key (primary key, or replica identity index)."""
        flt = self.settings.filter
        control = ControlConnection(self.settings)
        try:
            found = []
            for info in control.tables(flt):
                oid, key = control.query(
                    "SELECT c.oid, ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH "
                    "ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = "
                    "i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON "
                    "i.indrelid = c.oid AND CASE WHEN c.relreplident = 'i' THEN "
                    "i.indisreplident ELSE i.indisprimary END "
                    "WHERE n.nspname = %s AND c.relname = %s", info.schema, info.name)[0]
                whole = table_definition(control, int(oid), self.settings.database,
                                         info.schema, info.name, tuple(key or ()))
                hidden = flt.hidden_columns(info.schema, info.name,
                                            [column.name for column in whole.columns])
                found.append(table_definition(
                    control, int(oid), self.settings.database, info.schema, info.name,
                    tuple(key or ()),
                    [column.name for column in whole.columns if column.name not in hidden]))
            return found
        finally:
            control.close()

    def drop_columns_early(self, dropped: DroppedColumns) -> None:
        """The stream's decoders and the snapshot skip the columns the pipeline's
        transforms drop first (key columns excepted), as they skip the ``columns``
        option's hidden ones: a dropped column is never converted."""
        self.settings.filter.dropped = dropped

    def check_resume(self, position: Position) -> list[str]:
        try:
            checkpoint = WalPosition.from_json(position)
        except ValueError as exc:
            return [f"the checkpoint is not a postgres position ({exc}); delete it to restart "
                    f"from {self.settings.key_path}.start"]
        slot_name = self.settings.slot_name("check")
        control = ControlConnection(self.settings)
        try:
            slot = control.slot(slot_name)
        finally:
            control.close()
        if slot is None:
            return [dropped_slot_message(slot_name, checkpoint.lsn)]
        if slot.invalidated:
            return [invalidated_slot_message(slot_name)]
        return []

    def _problems(self, control: ControlConnection, pipeline: str) -> tuple[list[str], list[str]]:
        """``(blocking, advisory)``: streaming refuses to start on the first kind only."""
        settings = self.settings
        blocking = control.preflight(settings.slot_name(pipeline))
        tables = control.tables(settings.filter)
        missing, advisory = table_problems(settings, tables, settings.filter)
        blocking += missing + publication_problems(
            control, settings.publication_name(pipeline), tables, settings.key_path
        )
        return blocking, advisory

    def stream(
        self, start: Position | None, context: PipelineContext, *, once: bool
    ) -> Iterator[Batch]:
        settings = self.settings
        slot_name = settings.slot_name(context.pipeline)
        publication = settings.publication_name(context.pipeline)
        control = self._control = ControlConnection(settings)
        blocking, advisory = self._problems(control, context.pipeline)
        if blocking:
            raise SourceError(
                f"PostgreSQL at {settings.address} is not ready for meepo: " + "; ".join(blocking)
            )
        for line in advisory:
            log.warning("%s", line)
        # Every refusal comes before the publication or the slot is created: a refused
        # run leaves the server as it found it.
        resumed = self._resume_point(start, control, slot_name)
        followed = control.tables(settings.filter)
        ensure_publication(control, publication, followed)
        checkpoint = resumed or self._new_start(slot_name)
        self._start_fixed = True
        once_until = control.readable_end() if once else None
        log.info(
            "postgres source: %s slot %s publication %s from %s", settings.address, slot_name,
            publication, format_lsn(checkpoint.lsn),
        )
        if start is None:
            # Checkpoint the resolved start at once, so a crash before the first
            # transaction does not move "latest" forward and skip changes.
            yield Batch((), checkpoint.to_json())
        stream = self._stream = ReplicationStream(
            settings, control, context, slot=slot_name, publication=publication,
            once_until=once_until, known_tables={(t.schema, t.name) for t in followed},
        )
        if self._acknowledged is not None:
            stream.acknowledge(self._acknowledged)
        yield from stream.batches(checkpoint)

    def _resume_point(
        self, start: Position | None, control: ControlConnection, slot_name: str
    ) -> WalPosition | None:
        """Where to stream from when that needs nothing created: the checkpoint, or the
        configured start on an existing slot; ``None`` when a new slot must be created
        (see :meth:`_new_start`). Raises :class:`SourceError` for a start it refuses."""
        slot = control.slot(slot_name)
        if start is not None:
            try:
                checkpoint = WalPosition.from_json(start)
            except ValueError as exc:
                raise SourceError(
                    f"the checkpoint is not a postgres position ({exc}); delete it to restart "
                    f"from {self.settings.key_path}.start"
                ) from exc
            if slot is None:
                raise SourceError(dropped_slot_message(slot_name, checkpoint.lsn))
            self._note_slot_ahead(slot, checkpoint)
            return checkpoint
        configured = self.settings.start
        if slot is None:
            # A new slot starts at the WAL end or later: refuse an earlier start now.
            if configured.kind == "lsn" and configured.lsn is not None:
                latest = control.insert_lsn()
                if configured.lsn < latest:
                    raise SourceError(self._before_new_slot(configured.lsn, slot_name, latest))
            return None
        confirmed = slot.confirmed_flush or 0
        if configured.kind == "slot":
            return WalPosition(confirmed)
        if configured.kind == "lsn" and configured.lsn is not None:
            if configured.lsn < confirmed:
                raise SourceError(
                    f"{self.settings.key_path}.start {format_lsn(configured.lsn)} is before "
                    f"slot {slot_name!r}'s confirmed position {format_lsn(confirmed)}, and the "
                    "slot no longer has the changes before it: use a later LSN or \"slot\""
                )
            return WalPosition(configured.lsn)
        latest = control.insert_lsn()
        if latest > confirmed:
            log.warning(
                "no checkpoint and start = \"latest\": skipping the %d bytes of WAL that slot "
                "%s kept since %s (set start = \"slot\" to read them)",
                latest - confirmed, slot_name, format_lsn(confirmed),
            )
        return WalPosition(max(latest, confirmed))

    def _new_start(self, slot_name: str) -> WalPosition:
        """Create the slot (no checkpoint, no slot yet); where to stream from."""
        configured = self.settings.start
        with created_slot(self.settings, slot_name) as created:
            point = created.consistent_point
        if configured.kind == "lsn" and configured.lsn is not None and configured.lsn < point:
            raise SourceError(self._before_new_slot(configured.lsn, slot_name, point))
        return WalPosition(max(point, configured.lsn or 0))

    def _before_new_slot(self, lsn: int, slot_name: str, point: int) -> str:
        return (
            f"{self.settings.key_path}.start {format_lsn(lsn)} is before the new slot "
            f"{slot_name!r}, which starts at {format_lsn(point)} or later; changes before a "
            "slot existed cannot be read: remove start or use a later LSN"
        )

    def _note_slot_ahead(self, slot: SlotState, checkpoint: WalPosition) -> None:
        confirmed = slot.confirmed_flush
        if confirmed is not None and confirmed > checkpoint.lsn:
            log.info(
                "slot %s confirmed %s, past the checkpoint %s: the WAL between held nothing "
                "for this pipeline (idle), or another reader consumed the slot; streaming "
                "resumes at the slot's position", slot.name, format_lsn(confirmed),
                format_lsn(checkpoint.lsn),
            )

    def health(self, pipeline: str) -> list[str]:
        """The slot's retained WAL against ``max_retained_wal`` (one short query)."""
        limit = self.settings.max_retained_wal
        if limit is None:
            return []
        slot_name = self.settings.slot_name(pipeline)
        control = ControlConnection(self.settings)
        try:
            rows = control.query(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
                "FROM pg_replication_slots WHERE slot_name = %s", slot_name)
        except (SourceError, psycopg2.Error) as exc:
            return [f"cannot read slot {slot_name}'s retained WAL: {exc}"]
        finally:
            control.close()
        retained = int(rows[0][0] or 0) if rows else 0
        if retained <= limit:
            return []
        return [f"replication slot {slot_name} retains {retained:,} bytes of WAL, more than "
                f"{self.settings.key_path}.max_retained_wal ({limit:,}): the pipeline is "
                "behind or paused, and the server keeps the WAL until it catches up"]

    def snapshot_ready(self) -> bool:
        """Whether a snapshot chunk may start: only once the stream has fixed its start
        position. A watermark written earlier could fall before that position and never
        come back (a slow connection, a new slot waiting for open transactions); one
        written later is always read. Asked by cores that support it before each chunk."""
        return self._start_fixed

    def current_position(self) -> Position | None:
        control = ControlConnection(self.settings)
        try:
            return WalPosition(control.insert_lsn()).to_json()
        finally:
            control.close()

    def acknowledge(self, position: Position) -> None:
        lsn = WalPosition.from_json(position).lsn
        stream = self._stream
        if stream is None:
            self._acknowledged = lsn
        else:
            stream.acknowledge(lsn)

    def close(self) -> None:
        self.snapshots.close()
        if self._stream is not None:
            self._stream.close()
        if self._control is not None:
            self._control.close()
