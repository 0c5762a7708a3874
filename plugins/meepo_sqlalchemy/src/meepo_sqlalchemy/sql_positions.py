"""The position table of the ``sql`` sink's exactly-once mode: each batch's position is
written in the same transaction as the batch's rows, and read back when the pipeline starts.

The table (``position_table``, default ``meepo_positions``, created on first use) has one
row per pipeline and position part: ``(pipeline, part, position)`` with the part's JSON.
Most sources have one part (the whole position); a partitioned source (``kafka``) has one
per partition, so the workers of one group that share the destination never overwrite each
other's offsets (see :func:`meepo_core.position_parts`).

Within a batch's transaction, :meth:`PositionTable.record` runs first: one upsert of the
position row (the row lock it takes orders concurrent writers of one pipeline). For
partition offsets it first reads the pipeline's rows ``FOR UPDATE`` (SQLite serializes
writers anyway) and tells the sink to skip the batch when every offset in it is at or
behind the stored one (a batch applied before, replayed after a rebalance).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from meepo_core import Position, join_position_parts, position_parts

from .upsert import upsert_statement

DEFAULT_TABLE = "meepo_positions"


class PositionTable:
    """The position table ``name`` (in ``schema``, else the connection's default)."""

    def __init__(self, name: str = DEFAULT_TABLE, schema: str | None = None) -> None:
        self.name = name
        self.schema = schema
        self.table = Table(
            name, MetaData(),
            Column("pipeline", String(200), nullable=False),
            Column("part", String(250), nullable=False),
            Column("position", Text, nullable=False),
            PrimaryKeyConstraint("pipeline", "part"),
            schema=schema,
        )

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def create(self, conn: Connection) -> None:
        """Create the table unless it exists."""
        self.table.create(conn, checkfirst=True)

    def exists(self, conn: Connection) -> bool:
        return inspect(conn).has_table(self.name, schema=self.schema)

    def read(self, conn: Connection, pipeline: str) -> Position | None:
        """The position stored for ``pipeline``; None when there is none (or no table)."""
        if not self.exists(conn):
            return None
        return join_position_parts(self._parts(conn, pipeline, lock=False))

    def _parts(self, conn: Connection, pipeline: str, *, lock: bool) -> dict[str, Any]:
        query = select(self.table.c.part, self.table.c.position).where(
            self.table.c.pipeline == pipeline)
        if lock and conn.dialect.name != "sqlite":
            query = query.with_for_update()
        return {part: json.loads(value) for part, value in conn.execute(query)}

    def record(self, conn: Connection, pipeline: str, position: Position) -> bool:
        """Store ``position`` in ``conn``'s transaction. False (nothing written) when the
        position's partition offsets are all at or behind the stored ones: the batch that
        ends there was applied already, and the caller writes none of its rows."""
        parts = position_parts(position)
        if "" not in parts:  # partition offsets: compare with the stored ones, under lock
            stored = self._parts(conn, pipeline, lock=True)
            parts = {part: offset for part, offset in parts.items()
                     if not isinstance(stored.get(part), int) or offset > stored[part]}
            if not parts:
                return False
        rows = [{"pipeline": pipeline, "part": part,
                 "position": json.dumps(value, separators=(",", ":"), default=str)}
                for part, value in parts.items()]
        statement = upsert_statement(conn.dialect.name, self.table,
                                     ["pipeline", "part", "position"], None)
        assert statement is not None, "sql sink dialects all have an upsert"
        conn.execute(statement, rows)
        return True

    def problems(self, conn: Connection) -> list[str]:
        """What keeps exactly-once from working on ``conn``'s database: a missing right to
        create the position table, or (MySQL/MariaDB) tables of an engine without
        transactions."""
        dialect = conn.dialect.name
        found: list[str] = []
        try:
            if not self.exists(conn) and not _may_create(conn, self.schema):
                found.append(
                    f"exactly_once: the user may not create the position table "
                    f"{self.qualified}; grant it CREATE (or create the table as the README "
                    "shows)")
            if dialect in ("mysql", "mariadb"):
                rows = conn.execute(text(
                    "SELECT table_name, engine FROM information_schema.tables WHERE "
                    "table_schema = COALESCE(:schema, DATABASE()) AND engine IS NOT NULL "
                    "AND engine NOT IN ('InnoDB', 'XtraDB')"), {"schema": self.schema})
                for table, engine in rows:
                    found.append(
                        f"exactly_once: table {table} uses the {engine} engine, which has no "
                        "transactions; convert it: ALTER TABLE ... ENGINE=InnoDB")
        except SQLAlchemyError as exc:
            found.append(f"exactly_once: cannot inspect the destination: "
                         f"{str(exc).splitlines()[0]}")
        return found


def _may_create(conn: Connection, schema: str | None) -> bool:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return bool(conn.scalar(text(
            "SELECT has_schema_privilege(COALESCE(:schema, current_schema()), 'CREATE')"),
            {"schema": schema}))
    if dialect in ("mysql", "mariadb"):
        return bool(conn.scalar(text(
            "SELECT COUNT(*) FROM (SELECT privilege_type, grantee FROM "
            "information_schema.user_privileges UNION ALL SELECT privilege_type, grantee "
            "FROM information_schema.schema_privileges WHERE table_schema = "
            "COALESCE(:schema, DATABASE())) AS p WHERE privilege_type = 'CREATE' AND "
            "grantee = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', "
            "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')"), {"schema": schema}))
    return True  # SQLite: whoever may write the file may create tables
