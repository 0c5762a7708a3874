"""The ``mysql`` source type: MySQL/MariaDB binlog to row events."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Self

from meepo_core import (
    Batch,
    DroppedColumns,
    Options,
    PipelineContext,
    Position,
    RowEvent,
    SnapshotTable,
    Source,
    SourceError,
    TableDefinition,
)

from . import cascades
from .config import OPTIONS, MySQLSettings, parse_settings
from .control_connection import ControlConnection
from .definitions import read_definition
from .positions import BinlogPosition
from .rendezvous import PauseRendezvous
from .snapshot import MySQLSnapshots
from .stream import BinlogStream
from .transactions import starting_state

log = logging.getLogger("meepo.mysql")


class MySQLSource(Source):
    """Follows a MySQL or MariaDB server's binary log as a replica would.

    Contract: one event per changed row, in commit order; batches end on transaction
    boundaries (a huge transaction is cut into position-less batches, only its last one
    carries a position); positions are ``{"file", "pos", "gtid"?}`` (see
    :mod:`meepo_mysql.positions`); ``RowEvent.sequence`` grows strictly across the binlog;
    ``committed_at`` is the transaction's UTC timestamp and ``txid`` its GTID (or
    ``file:offset`` of its first event when the server has no GTIDs).
    """

    OPTIONS = OPTIONS  # declared in .config, where they are read
    yields_fresh_events = True  # decoded for this run, held nowhere else
    snapshots: MySQLSnapshots  # its snapshot methods delegate to it (Source.snapshots)

    def __init__(self, settings: MySQLSettings) -> None:
        self.settings = settings
        self.rendezvous = PauseRendezvous()
        self.snapshots = MySQLSnapshots(settings, self.rendezvous)
        self._stream: BinlogStream | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        return cls(parse_settings(options))

    def check(self) -> list[str]:
        """Preflight problems (one line each); cascading foreign keys are logged as
        warnings, since they do not stop a pipeline."""
        control = ControlConnection(self.settings)
        try:
            self._warn_cascades(control)
            return self._problems(control)
        finally:
            control.close()

    def _problems(self, control: ControlConnection, *, with_start: bool = True) -> list[str]:
        """Preflight, tables, hidden keys and (``with_start``: no checkpoint yet) the
        configured start."""
        start = self._start_problems(control) if with_start else []
        return (control.preflight() + start + self._table_problems(control)
                + self._hidden_key_problems(control))

    def _warn_cascades(self, control: ControlConnection) -> None:
        for cascade in cascades.find(control, self.settings.filter):
            log.warning("%s", cascades.warning(cascade))

    def _hidden_key_problems(self, control: ControlConnection) -> list[str]:
        """``columns`` rules must not hide a primary-key column: the key is in every event."""
        if not self.settings.filter.column_rules:
            return []
        sql = ("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM "
               "information_schema.KEY_COLUMN_USAGE WHERE CONSTRAINT_NAME = 'PRIMARY'")
        schemas = self.settings.filter.schemas()
        if schemas is not None:
            sql += f" AND TABLE_SCHEMA IN ({', '.join(['%s'] * len(schemas))})"
        rows = control.query(sql, *(schemas or ()))
        problems = []
        flt = self.settings.filter
        for schema, table, column in rows:
            schema, table, column = str(schema), str(table), str(column)
            if not flt.follows(schema, table):
                continue
            for pattern in flt.rules_hiding(schema, table, column):
                problems.append(
                    f"{self.settings.key_path}.columns.\"{pattern}\" hides {column!r}, a "
                    f"primary-key column of {schema}.{table}; every event carries its key in "
                    "pk, so a key column cannot be hidden: keep the column, or leave the "
                    "table out with exclude_tables"
                )
        return problems

    def _table_problems(self, control: ControlConnection) -> list[str]:
        """Tables named literally in ``tables`` must exist: a typo would follow nothing."""
        problems = []
        for index, schema, table in self.settings.filter.literal_tables():
            found = control.query(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s", schema, table,
            )
            if not found:
                pattern = f"{schema}.{table}"
                problems.append(
                    f"{self.settings.key_path}.tables[{index}]: table {pattern!r} does not exist "
                    f"on {self.settings.address} (or this user has no privilege on it); fix the "
                    "name, create the table, or GRANT SELECT on it"
                )
        return problems

    def table_definitions(self) -> list[TableDefinition] | None:
        """The definitions of the followed tables as the server has them now."""
        flt = self.settings.filter
        sql = ("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
               "WHERE TABLE_TYPE = 'BASE TABLE'")
        schemas = flt.schemas()
        if schemas is not None:
            sql += f" AND TABLE_SCHEMA IN ({', '.join(['%s'] * len(schemas))})"
        control = ControlConnection(self.settings)
        try:
            found = []
            for schema, table in control.query(sql + " ORDER BY TABLE_SCHEMA, TABLE_NAME",
                                               *(schemas or ())):
                if not flt.follows(str(schema), str(table)):
                    continue
                names = [str(r[0]) for r in control.query(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                    "AND TABLE_NAME = %s", schema, table)]
                definition = read_definition(control, str(schema), str(table),
                                             flt.hidden_columns(str(schema), str(table), names))
                if definition is not None:
                    found.append(definition)
            return found
        finally:
            control.close()

    def drop_columns_early(self, dropped: DroppedColumns) -> None:
        """The binlog and snapshot decoders skip the columns the pipeline's transforms
        drop first (key columns excepted), as they skip the ``columns`` option's hidden
        ones: a dropped column is never decoded."""
        self.settings.filter.dropped = dropped

    def table_columns(self) -> dict[str, list[str]] | None:
        flt = self.settings.filter
        sql = ("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
               "WHERE 1 = 1")
        schemas = flt.schemas()
        if schemas is not None:
            sql += f" AND TABLE_SCHEMA IN ({', '.join(['%s'] * len(schemas))})"
        control = ControlConnection(self.settings)
        try:
            rows = control.query(sql + " ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
                                 *(schemas or ()))
        finally:
            control.close()
        return flt.visible_columns(rows)

    def check_resume(self, position: Position) -> list[str]:
        try:
            checkpoint = BinlogPosition.from_json(position)
        except ValueError as exc:
            return [f"the checkpoint is not a mysql position ({exc}); delete it to restart "
                    f"from {self.settings.key_path}.start"]
        control = ControlConnection(self.settings)
        try:
            return self._resume_problems(control, checkpoint)
        finally:
            control.close()

    def _resume_problems(self, control: ControlConnection, checkpoint: BinlogPosition) -> list[str]:
        """The checkpoint's binlog must still be on the server (GTID resumes excepted)."""
        if checkpoint.gtid is not None and (
                self.settings.start.kind == "gtid" or not checkpoint.file):
            return []
        why = control.missing_position(checkpoint)
        if why is None:
            return []
        return [f"MySQL at {self.settings.address} no longer has the binlog to resume from "
                f"{checkpoint.to_json()} (it was purged): {why}; to recover, delete the "
                "checkpoint and backfill the sinks (meepo snapshot), or delete it and set "
                "start (\"latest\", \"FILE:POS\" or a GTID set)"]

    def _start_problems(self, control: ControlConnection) -> list[str]:
        start = self.settings.start
        key = f"{self.settings.key_path}.start"
        if start.kind == "position":
            assert start.file is not None and start.pos is not None
            why = control.missing_position(BinlogPosition(start.file, start.pos))
            return [] if why is None else [
                f"{key} = \"{start.file}:{start.pos}\": {why}; set start to a position of "
                "SHOW BINARY LOGS, \"earliest\" or \"latest\""]
        if start.kind != "gtid":
            return []
        if start.flavor != control.flavor:
            return [f"{key} is a {start.flavor} GTID set but the server is "
                    f"{control.flavor} ({control.version}); write a {control.flavor} GTID set"]
        if control.flavor == "mysql" and control.variables().get("gtid_mode", "OFF") != "ON":
            return [f"{key} is a GTID set but gtid_mode is not ON: run SET GLOBAL gtid_mode "
                    "(OFF_PERMISSIVE, ON_PERMISSIVE, then ON, with enforce_gtid_consistency = "
                    "ON) and add gtid_mode = ON to my.cnf, or start from \"FILE:POS\""]
        return []

    def stream(
        self, start: Position | None, context: PipelineContext, *, once: bool
    ) -> Iterator[Batch]:
        control = ControlConnection(self.settings)
        try:
            problems = self._problems(control, with_start=start is None)
            if problems:
                raise SourceError(
                    f"MySQL at {self.settings.address} is not ready for meepo: "
                    + "; ".join(problems)
                )
            position, gtid_mode = self._resolve(start, control)
            if start is not None:
                problems = self._resume_problems(control, position)
                if problems:
                    raise SourceError(problems[0])
            position, gtids = starting_state(control, position, gtid_mode)
            server_id = self.settings.resolved_server_id(context.identity, context.purpose)
            log.info(
                "mysql source: %s %s from %s (%s mode) as replica server_id %d",
                control.flavor, self.settings.address, position.to_json(),
                "GTID" if gtid_mode else "file/pos", server_id,
            )
            stream = self._stream = BinlogStream(
                self.settings, control, context, server_id=server_id, once=once,
                gtid_mode=gtid_mode, reference=self.settings.decoder == "library",
                rendezvous=self.rendezvous, start=start,
            )
            if start is None and self.settings.start.kind in ("latest", "earliest"):
                # A start that moves with time is checkpointed at once, so a crash before
                # the first transaction does not move "latest" forward and skip changes. A
                # fixed start is not: a rerun resolves it again (or a corrected one).
                first = position.to_json()
                history = stream.tables.history
                if history is not None and history.state is not None:
                    first["types"] = history.state
                yield Batch((), first)
            for cascade in stream.tables.load_cascades():
                log.warning("%s", cascades.warning(cascade))
            yield from stream.batches(position, gtids)
        finally:
            control.close()

    def _resolve(
        self, start: Position | None, control: ControlConnection
    ) -> tuple[BinlogPosition, bool]:
        """The position to stream from and whether to resume by GTID."""
        configured = self.settings.start
        if start is not None:
            try:
                position = BinlogPosition.from_json(start)
            except ValueError as exc:
                raise SourceError(
                    f"the checkpoint is not a mysql position ({exc}); delete it to restart "
                    f"from {self.settings.key_path}.start"
                ) from exc
            gtid_mode = position.gtid is not None and (
                configured.kind == "gtid" or not position.file
            )
            return position, gtid_mode
        if configured.kind == "latest":
            return control.current_position(), False
        if configured.kind == "earliest":
            logs = control.binary_logs()
            if not logs:
                raise SourceError(f"MySQL at {self.settings.address} has no binary logs")
            return BinlogPosition(logs[0], 4), False
        if configured.kind == "position":
            assert configured.file is not None and configured.pos is not None
            return BinlogPosition(configured.file, configured.pos), False
        assert configured.gtid is not None
        return BinlogPosition("", 4, configured.gtid), True

    def read_chunk_between(
        self,
        low: str,
        high: str,
        table: SnapshotTable,
        after: tuple[Any, ...] | None,
        limit: int,
        where: Mapping[str, Any] | None = None,
        until: tuple[Any, ...] | None = None,
    ) -> list[RowEvent]:
        """The chunk read at a binlog position where the reader paused, both marks placed
        there (see :meth:`MySQLSnapshots.read_chunk_between`)."""
        return self.snapshots.read_chunk_between(low, high, table, after, limit, where, until)

    def snapshot_ready(self) -> bool:
        """Only once the binlog reader has reported where it reads (see
        :class:`~meepo_mysql.rendezvous.PauseRendezvous`)."""
        return self.rendezvous.ready

    def current_position(self) -> Position | None:
        control = ControlConnection(self.settings)
        try:
            position = control.current_position()
            if control.flavor == "mariadb":
                gtid = control.mariadb_gtid_at(position.file, position.pos)
                position = BinlogPosition(position.file, position.pos, gtid or None)
            return position.to_json()
        finally:
            control.close()

    def close(self) -> None:
        self.snapshots.close()
        if self._stream is not None:
            self._stream.close()
        self.rendezvous.close()
