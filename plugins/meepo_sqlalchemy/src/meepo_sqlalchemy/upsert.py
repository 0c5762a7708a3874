"""Each dialect's own upsert, optionally guarded by a version column against regressions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, or_
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql import Executable


def upsert_statement(dialect: str, table: Table, columns: list[str],
                     version: str | None) -> Executable | None:
    """An INSERT that updates ``columns`` of an existing row with the same primary key:
    PostgreSQL and SQLite ``ON CONFLICT (pk) DO UPDATE``, MySQL/MariaDB ``ON DUPLICATE KEY
    UPDATE``. With ``version``, an existing row is only changed when its version is NULL or
    lower than the incoming one. ``None`` for other dialects."""
    keys = [c.name for c in table.primary_key.columns]
    rest = [c for c in columns if c not in keys]
    if dialect in ("postgresql", "sqlite"):
        module: Any = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(table)
        if not rest:
            done: Executable = stmt.on_conflict_do_nothing(index_elements=keys)
            return done
        where = None
        if version is not None:
            current = table.c[version]
            where = or_(current.is_(None), current < stmt.excluded[version])
        upsert: Executable = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in rest}, where=where
        )
        return upsert
    if dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(table)
        if not rest:
            rest = keys[:1]  # a no-op assignment: MySQL has no DO NOTHING
        if version is None:
            return stmt.on_duplicate_key_update(
                [(c, stmt.inserted[c]) for c in rest]
            )
        current = table.c[version]
        newer = or_(current.is_(None), current < stmt.inserted[version])
        # assignments run left to right: the version column must come last
        ordered = [c for c in rest if c != version] + ([version] if version in rest else [])
        return stmt.on_duplicate_key_update(
            [(c, func.IF(newer, stmt.inserted[c], table.c[c])) for c in ordered]
        )
    return None


SUPPORTED_DIALECTS = ("postgresql", "sqlite", "mysql", "mariadb")
