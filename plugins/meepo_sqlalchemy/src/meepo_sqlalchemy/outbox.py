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

from meepo_core.events import RowEvent
from meepo_core.serialization import event_to_dict

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
    """The lock row is missing: the outbox was not created."""


def write_events(conn: Connection, tables: OutboxTables, txid: str,
                 events: Sequence[RowEvent]) -> None:
    """Take the commit-order lock, then insert ``events`` in order, on ``conn`` inside the
    committing transaction (the caller commits right after)."""
    locked = conn.execute(
        update(tables.lock).where(tables.lock.c.id == 1).values(commits=tables.lock.c.commits + 1)
    )
    if locked.rowcount != 1:
        raise OutboxMissing(
            f"outbox lock row missing in table {tables.lock.name}; create the outbox once with "
            f"meepo_sqlalchemy.create_outbox(engine, {tables.name!r})"
        )
    rows: list[dict[str, Any]] = [
        {"txid": txid, "table_name": event.qualified_table[:255], "action": event.action,
         "payload": encode_payload(event)}
        for event in events
    ]
    conn.execute(insert(tables.outbox), rows)


def encode_payload(event: RowEvent) -> str:
    data = event_to_dict(event)
    for key in ("name", "position", "sequence", "txid"):  # the relay sets these
        data.pop(key, None)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
