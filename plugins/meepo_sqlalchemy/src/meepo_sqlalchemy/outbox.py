"""The outbox tables and how a committing transaction writes to them.

Two tables (names derive from ``name``, default ``meepo_outbox``):

``meepo_outbox``
    one row per event: ``id`` (auto-increment, never reused), ``txid``, ``table_name``,
    ``action`` and ``payload`` (the event as JSON, see :mod:`meepo_core.serialization`).
``meepo_outbox_lock``
    a single row that every outbox-writing transaction updates right before it inserts its
    events and commits.

Why the lock row: ``id`` order is not commit order when transactions run concurrently
(on PostgreSQL and MariaDB, T1 may take id 10, T2 id 11, and T2 commit first; a relay that
saw 11 and checkpointed it would later skip 10 for ever). Every writer inserts its outbox
rows *after* updating the lock row and holds that row lock until its commit, so the next
writer can only allocate ids after the previous one committed: id order equals commit
order, and once the relay sees id N committed, no row with an id below N can appear later.
The cost is that the tail of committing transactions (one UPDATE, one INSERT, the COMMIT)
is serialised; the rest of each transaction runs concurrently. SQLite serialises writers
anyway, so there the lock only costs one UPDATE.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import DBAPIError

from meepo_core import RowEvent, event_to_dict

from .urls import describe

DEFAULT_NAME = "meepo_outbox"

_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: a rowid alias with AUTOINCREMENT
_PAYLOAD = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class OutboxTables:
    """The outbox table and its lock table, defined on ``metadata`` (so ``create_all`` and
    Alembic autogenerate see them) or on a private one."""

    def __init__(self, name: str = DEFAULT_NAME, metadata: MetaData | None = None,
                 schema: str | None = None) -> None:
        self.metadata = metadata if metadata is not None else MetaData()
        self.name = name
        key = f"{schema}.{name}" if schema else name
        if key in self.metadata.tables:
            self.outbox = self.metadata.tables[key]
            self.lock = self.metadata.tables[f"{key}_lock"]
            return
        self.outbox = Table(
            name, self.metadata,
            Column("id", _ID, primary_key=True, autoincrement=True),
            Column("txid", String(36), nullable=False),
            Column("table_name", String(255), nullable=False),
            Column("action", String(8), nullable=False),
            Column("payload", _PAYLOAD, nullable=False),
            schema=schema,
            sqlite_autoincrement=True,  # never reuse ids of deleted rows
        )
        self.lock = Table(
            f"{name}_lock", self.metadata,
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("commits", BigInteger, nullable=False),
            schema=schema,
        )

    def create(self, bind: Engine | Connection) -> None:
        """Create both tables if missing and seed the lock row (idempotent)."""
        if isinstance(bind, Engine):
            with bind.begin() as conn:
                self.create(conn)
            return
        self.outbox.create(bind, checkfirst=True)
        self.lock.create(bind, checkfirst=True)
        if bind.execute(select(self.lock.c.id).where(self.lock.c.id == 1)).first() is None:
            bind.execute(insert(self.lock).values(id=1, commits=0))


_tables: dict[tuple[str, str | None], OutboxTables] = {}


def outbox_tables(name: str = DEFAULT_NAME, schema: str | None = None) -> OutboxTables:
    """The process-wide definition of outbox ``name`` (one MetaData per name)."""
    key = (name, schema)
    if key not in _tables:
        _tables[key] = OutboxTables(name, schema=schema)
    return _tables[key]


def create_outbox(bind: Engine | Connection, name: str = DEFAULT_NAME,
                  schema: str | None = None) -> OutboxTables:
    """Create the outbox tables ``name`` and ``name_lock`` in ``bind``'s database if missing.

    Call once at deploy time (or add :attr:`OutboxTables.metadata`'s tables to your
    migrations: ``OutboxTables(name, metadata=Base.metadata)``)."""
    tables = outbox_tables(name, schema)
    tables.create(bind)
    return tables


class OutboxMissing(RuntimeError):
    """The outbox tables (or the lock row) do not exist: the outbox was not created."""


#: How each database says a table does not exist: PostgreSQL's SQLSTATE, MySQL/MariaDB's
#: error code, SQLite's message (it has no code for it).
_UNDEFINED_TABLE_SQLSTATE = "42P01"
_NO_SUCH_TABLE_MYSQL_CODE = 1146
_NO_SUCH_TABLE_SQLITE = "no such table"


def is_missing_table(exc: BaseException) -> bool:
    """Whether ``exc`` (a SQLAlchemy ``DBAPIError`` or a driver error) says that a table
    the statement uses does not exist."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if _UNDEFINED_TABLE_SQLSTATE in (getattr(orig, "sqlstate", None),
                                     getattr(orig, "pgcode", None)):
        return True
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    if args and args[0] == _NO_SUCH_TABLE_MYSQL_CODE:
        return True
    return _NO_SUCH_TABLE_SQLITE in str(orig)


def create_call(tables: OutboxTables) -> str:
    """The :func:`create_outbox` call that creates ``tables``, as the user writes it."""
    args = ["engine"]
    if tables.name != DEFAULT_NAME:
        args.append(repr(tables.name))
    if tables.outbox.schema:
        args.append(f"schema={tables.outbox.schema!r}")
    return f"meepo_sqlalchemy.create_outbox({', '.join(args)})"


def missing_message(missing: Sequence[Table], tables: OutboxTables, where: str) -> str:
    """One line naming the ``missing`` outbox tables, the database and the fix."""
    names = " and ".join(table.fullname for table in missing)
    said = f"table {names} does" if len(missing) == 1 else f"tables {names} do"
    return f"outbox {said} not exist in {where}; create the outbox once with {create_call(tables)}"


def write_events(conn: Connection, tables: OutboxTables, txid: str,
                 events: Sequence[RowEvent]) -> None:
    """Take the commit-order lock, then insert ``events`` in order, on ``conn`` inside the
    committing transaction (the caller commits right after).

    Raises :class:`OutboxMissing` (one line naming the table and :func:`create_outbox`)
    when the outbox was not created."""
    rows: list[dict[str, Any]] = [
        {"txid": txid, "table_name": event.qualified_table[:255], "action": event.action,
         "payload": encode_payload(event)}
        for event in events
    ]
    where = describe(conn.engine.url)
    table = tables.lock
    try:
        locked = conn.execute(update(tables.lock).where(tables.lock.c.id == 1)
                              .values(commits=tables.lock.c.commits + 1))
        if locked.rowcount != 1:
            raise OutboxMissing(f"outbox lock row missing in table {tables.lock.fullname} of "
                                f"{where}; create the outbox once with {create_call(tables)}")
        table = tables.outbox
        conn.execute(insert(tables.outbox), rows)
    except DBAPIError as exc:
        if is_missing_table(exc):
            raise OutboxMissing(missing_message([table], tables, where)) from exc
        raise


def encode_payload(event: RowEvent) -> str:
    data = event_to_dict(event)
    for key in ("name", "position", "sequence", "txid"):  # the relay sets these
        data.pop(key, None)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
