"""The control connection: catalog queries, server facts and the preflight checks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2

from meepo_core import TableFilter

from .config import PostgresSettings
from .connections import connect_control, connect_error
from .positions import format_lsn, parse_lsn

log = logging.getLogger("meepo.postgres")

MIN_VERSION = 100000  # pgoutput arrived in PostgreSQL 10


@dataclass(frozen=True)
class SlotState:
    """A row of ``pg_replication_slots``."""

    name: str
    plugin: str | None
    kind: str
    database: str | None
    active_pid: int | None
    confirmed_flush: int | None
    wal_status: str | None  # "lost" once the server removed WAL the slot needed

    @property
    def invalidated(self) -> bool:
        return self.wal_status == "lost"


@dataclass(frozen=True)
class TableInfo:
    """A table that the pipeline's ``tables`` patterns match."""

    schema: str
    name: str
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    has_key: bool  # a primary key (DEFAULT) or replica identity index (INDEX) exists
    selectable: bool

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def sql_name(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def publishable(self) -> bool:
        """Whether its UPDATEs and DELETEs can be published (else they fail on the server)."""
        return self.replica_identity == "f" or (
            self.replica_identity in ("d", "i") and self.has_key
        )


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class ControlConnection:
    """A plain connection for queries (not the stream). Reconnects once when it was lost."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._conn: Any = None
        self._version: int | None = None

    def connect(self) -> Any:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = connect_control(self.settings)
            except psycopg2.OperationalError as exc:
                raise connect_error(self.settings, exc)[0] from exc
        return self._conn

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one statement; a lost connection is reopened once and retried."""
        for attempt in (1, 2):
            conn = self.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, params or None)
                    return list(cur.fetchall()) if cur.description else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    # -- server facts ---------------------------------------------------------------------
    @property
    def version(self) -> int:
        if self._version is None:
            self._version = int(self.query("SHOW server_version_num")[0][0])
        return self._version

    def setting(self, name: str) -> str:
        return str(self.query("SELECT current_setting(%s)", name)[0][0])

    def insert_lsn(self) -> int:
        """The end of the WAL written so far (``pg_current_wal_insert_lsn``)."""
        return parse_lsn(str(self.query("SELECT pg_current_wal_insert_lsn()::text")[0][0]))

    def readable_end(self) -> int:
        """The WAL written so far, as a replication stream reports it once it has read all.

        ``pg_current_wal_insert_lsn`` points past a page header when the WAL ends right at
        a page boundary, where a reader stops; this gives the boundary then.
        """
        lsn = self.insert_lsn()
        rows = dict(self.query(
            "SELECT name, setting FROM pg_settings "
            "WHERE name IN ('wal_block_size', 'wal_segment_size')"
        ))
        if lsn % int(rows["wal_segment_size"]) == 40:  # long page header, segment start
            return lsn - 40
        if lsn % int(rows["wal_block_size"]) == 24:  # short page header
            return lsn - 24
        return lsn

    def slot(self, name: str) -> SlotState | None:
        status = "wal_status" if self.version >= 130000 else "NULL"
        rows = self.query(
            f"SELECT slot_name, plugin, slot_type, database, active_pid, "
            f"confirmed_flush_lsn::text, {status} FROM pg_replication_slots "
            "WHERE slot_name = %s", name,
        )
        if not rows:
            return None
        slot, plugin, kind, database, pid, confirmed, wal_status = rows[0]
        return SlotState(
            slot, plugin, kind, database, pid,
            parse_lsn(confirmed) if confirmed else None, wal_status,
        )

    def tables(self, table_filter: TableFilter) -> list[TableInfo]:
        """The ordinary tables of this database that ``table_filter`` follows."""
        rows = self.query(
            "SELECT n.nspname, c.relname, c.relreplident, "
            "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND "
            "  CASE WHEN c.relreplident = 'i' THEN i.indisreplident ELSE i.indisprimary END), "
            "has_table_privilege(c.oid, 'SELECT') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND c.relpersistence = 'p' "
            "AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast%%' "
            "ORDER BY 1, 2"
        )
        return [
            TableInfo(schema, name, str(identity), bool(has_key), bool(selectable))
            for schema, name, identity, has_key, selectable in rows
            if table_filter.follows(schema, name)
        ]

    # -- preflight ------------------------------------------------------------------------
    def preflight(self, slot_name: str) -> list[str]:
        """Server-wide problems, one line each with the fix; empty when ready."""
        if self.version < MIN_VERSION:
            return [f"PostgreSQL {self.setting('server_version')} has no pgoutput plugin; "
                    "meepo needs PostgreSQL 10 or later"]
        problems = []
        wal_level = self.setting("wal_level")
        if wal_level != "logical":
            problems.append(
                f"wal_level is {wal_level}, logical replication needs logical: run ALTER "
                "SYSTEM SET wal_level = logical and restart the server"
            )
        user = self.settings.user
        role = self.query(
            "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        if not role or not role[0][0]:
            problems.append(
                f"user {user!r} lacks the REPLICATION attribute needed to stream changes: "
                f"run ALTER ROLE {quote_ident(user)} WITH REPLICATION"
            )
        slot = self.slot(slot_name)
        problems += self._capacity_problems(slot)
        if slot is not None:
            problems += self._slot_problems(slot)
        return problems

    def _capacity_problems(self, slot: SlotState | None) -> list[str]:
        problems = []
        if slot is None:
            limit = int(self.setting("max_replication_slots"))
            used = int(self.query("SELECT count(*) FROM pg_replication_slots")[0][0])
            if used >= limit:
                problems.append(
                    f"no free replication slot ({used} of max_replication_slots = {limit} in "
                    "use): drop an unused one with SELECT pg_drop_replication_slot('NAME'), or "
                    "raise max_replication_slots in postgresql.conf and restart the server"
                )
        if slot is None or slot.active_pid is None:
            limit = int(self.setting("max_wal_senders"))
            used = int(self.query(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'"
            )[0][0])
            if used >= limit:
                problems.append(
                    f"no free WAL sender ({used} of max_wal_senders = {limit} in use): raise "
                    "max_wal_senders in postgresql.conf and restart the server"
                )
        return problems

    def _slot_problems(self, slot: SlotState) -> list[str]:
        name, database = slot.name, self.settings.database
        drop = f"SELECT pg_drop_replication_slot({quote_literal(name)})"
        if slot.kind != "logical" or slot.plugin != "pgoutput":
            return [f"replication slot {name!r} is a {slot.kind} slot with plugin "
                    f"{slot.plugin!r}, meepo needs a logical slot with pgoutput: {drop}, or "
                    f"set {self.settings.key_path}.slot to another name"]
        if slot.database != database:
            return [f"replication slot {name!r} belongs to database {slot.database!r}, not "
                    f"{database!r}: set {self.settings.key_path}.slot to another name"]
        if slot.invalidated:
            return [invalidated_slot_message(name)]
        return []


def invalidated_slot_message(slot: str) -> str:
    return (
        f"replication slot {slot!r} was invalidated: the server removed WAL it still needed "
        "(see max_slot_wal_keep_size), so changes after its position are lost; to recover, "
        f"run SELECT pg_drop_replication_slot({quote_literal(slot)}), delete the pipeline's "
        "checkpoint, rerun (a new slot starts at the current position) and backfill the sinks"
    )


def dropped_slot_message(slot: str, resume: int) -> str:
    return (
        f"replication slot {slot!r} no longer exists (it was dropped), so the changes after "
        f"the checkpoint {format_lsn(resume)} are lost; to recover, delete the pipeline's "
        "checkpoint, rerun (a new slot starts at the current position) and backfill the sinks"
    )


def table_problems(
    settings: PostgresSettings, tables: Sequence[TableInfo], table_filter: TableFilter
) -> tuple[list[str], list[str]]:
    """``(blocking, advisory)`` problems of the followed tables, one line each with the fix.

    Missing literal tables block (a typo would follow nothing); tables without a usable
    replica identity and tables without SELECT are advisory: streaming works without them
    (such tables are left out of a publication meepo creates).
    """
    found = {(t.schema, t.name) for t in tables}
    blocking = [
        f"{settings.key_path}.tables[{index}]: table {schema}.{name} does not exist in "
        f"database {settings.database!r} (or this user cannot see it); fix the name or "
        "create the table"
        for index, schema, name in table_filter.literal_tables()
        if (schema, name) not in found
    ]
    advisory = []
    for table in tables:
        if not table.publishable:
            advisory.append(
                f"table {table.qualified} has no primary key and replica identity "
                f"{_IDENTITY_NAMES[table.replica_identity]}, so its UPDATEs and DELETEs cannot "
                f"be published: run ALTER TABLE {table.sql_name} REPLICA IDENTITY FULL (or add "
                "a primary key)"
            )
        if not table.selectable:
            advisory.append(
                f"user {settings.user!r} lacks SELECT on table {table.qualified}: run GRANT "
                f"SELECT ON {table.sql_name} TO {quote_ident(settings.user)}"
            )
    return blocking, advisory


_IDENTITY_NAMES = {"d": "DEFAULT", "n": "NOTHING", "f": "FULL", "i": "USING INDEX"}

