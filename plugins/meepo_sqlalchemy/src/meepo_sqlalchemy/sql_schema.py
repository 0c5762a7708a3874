"""Schema changes for the ``sql`` sink: make a target table match the source's.

A :class:`~meepo_core.SchemaChange` is applied by reconciling the target table with
``change.after`` (state, not statement: a replayed change, or a ``describe`` after a
restart, changes nothing that already matches):

* missing table: ``CREATE TABLE`` with the source's columns and key (``create_tables``);
* a column renamed at the source (``renamed_columns``) whose old name the target still
  has: ``RENAME COLUMN``;
* a column the target lacks: ``ADD COLUMN`` (its default and ``NOT NULL`` copied when the
  default is a plain literal; otherwise nullable, without default);
* a column the source no longer has: ``DROP COLUMN`` (``drop_columns = false`` keeps it);
* another type (of a column the change retypes, or any column when ``before`` is unknown):
  ``ALTER COLUMN ... TYPE`` when the new type holds every value of the old
  one (a longer string, a bigger integer, more digits, text); a column made nullable:
  ``DROP NOT NULL``;
* ``truncate``: ``DELETE FROM`` the target; ``drop``: ``DROP TABLE`` (``drop_tables =
  false`` keeps it); ``rename``: ``RENAME TO`` the new name.

Refused, with a dead letter that says what to do (the table stays as it is and the
pipeline goes on): a narrowing or incompatible type change, a new or changed primary key,
a table without a primary key to create, and any DDL the target rejects.

Types: a source type whose name the target dialect knows (``varchar(20)`` into MySQL,
``character varying(20)`` into PostgreSQL) is used as written; another one is read with
SQLAlchemy's own type tables of PostgreSQL, MySQL and SQLite and compiled for the target
(``int(11)`` becomes ``INTEGER`` in PostgreSQL); an unknown one is used as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, MetaData, Table, text
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.mysql import base as mysql_base
from sqlalchemy.dialects.postgresql import base as postgresql_base
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.types import (
    BigInteger,
    DateTime,
    Float,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Time,
    TypeEngine,
)

from meepo_core import ColumnDefinition, Options, OptionSpec, SchemaChange, TableDefinition

_NAMES: dict[str, dict[str, type[TypeEngine[Any]]]] = {
    "postgresql": dict(postgresql_base.ischema_names),
    "mysql": dict(mysql_base.ischema_names),
    "sqlite": {name.lower(): cls for name, cls in SQLiteDialect.ischema_names.items()},
}
_NAMES["mariadb"] = _NAMES["mysql"]
_ARGS = re.compile(r"\(([^()]*)\)")
_FLAGS = re.compile(r"\b(unsigned|zerofill|signed)\b")
_LITERAL = re.compile(r"^(?:-?\d+(?:\.\d+)?|'(?:[^']|'')*'|true|false|null)$", re.IGNORECASE)


class Refusal(Exception):
    """A change this sink does not apply; the message says why and what to do."""


SCHEMA_CHANGES = OptionSpec(
    "schema_changes", "string", "follow",
    '`"follow"`: apply them (see *Schema changes*); `"ignore"`: leave target tables as they '
    "are (schema changes reach the sink but change nothing).", choices=("follow", "ignore"))
CREATE_TABLES = OptionSpec(
    "create_tables", "boolean", True,
    "Create the target table of a table the source describes and the target lacks.")
DROP_COLUMNS = OptionSpec(
    "drop_columns", "boolean", True,
    "Drop a target column the source no longer has; `false` keeps it (with its values, NULL "
    "in new rows).")
DROP_TABLES = OptionSpec(
    "drop_tables", "boolean", True,
    "Drop the target table when the source drops its table; `false` keeps it.")
#: The ``sql`` sink's schema change options.
SCHEMA_OPTIONS = (SCHEMA_CHANGES, CREATE_TABLES, DROP_COLUMNS, DROP_TABLES)


@dataclass(frozen=True)
class SchemaOptions:
    """The ``sql`` sink's schema change options (see its README)."""

    follow: bool = True
    create_tables: bool = True
    drop_columns: bool = True
    drop_tables: bool = True

    @classmethod
    def from_options(cls, options: Options) -> SchemaOptions:
        """``schema_changes`` (``"follow"`` or ``"ignore"``), ``create_tables``,
        ``drop_columns`` and ``drop_tables``, all read from the sink's options."""
        return cls(
            options.choice(SCHEMA_CHANGES) == "follow",
            options.boolean(CREATE_TABLES),
            options.boolean(DROP_COLUMNS),
            options.boolean(DROP_TABLES),
        )


def _split(type_text: str) -> tuple[str, list[str]]:
    """``("character varying", ["20"])`` for ``character varying(20)``."""
    lowered = type_text.strip().lower()
    found = _ARGS.search(lowered)
    args = [a.strip() for a in found.group(1).split(",")] if found else []
    name = " ".join(_FLAGS.sub(" ", _ARGS.sub(" ", lowered)).split())
    return name, args


def parse_type(type_text: str) -> TypeEngine[Any] | None:
    """The SQLAlchemy type a source type stands for, from the type tables of the dialects
    meepo reads; ``None`` when no table knows its name."""
    name, args = _split(type_text)
    for names in _NAMES.values():
        cls = names.get(name)
        if cls is None:
            continue
        numbers = [int(a) for a in args if a.isdigit()]
        try:
            if issubclass(cls, Numeric) and not issubclass(cls, Float) and numbers:
                return cls(*numbers[:2])  # type: ignore[call-overload,no-any-return]
            if issubclass(cls, String) and numbers and "enum" not in name and name != "set":
                return cls(numbers[0])
            if issubclass(cls, DateTime | Time) and "with time zone" in name:
                return cls(timezone=True)
            if name == "enum" or name == "set":
                return String(255)
            return cls()
        except TypeError:
            return None
    return None


def target_type(type_text: str, dialect: Dialect) -> str:
    """The type to declare in the target for a source type (see the module docstring)."""
    name, _ = _split(type_text)
    if name in _NAMES.get(dialect.name, {}):
        return type_text
    parsed = parse_type(type_text)
    return str(parsed.compile(dialect=dialect)) if parsed is not None else type_text


def _int_rank(kind: TypeEngine[Any]) -> int:
    if isinstance(kind, BigInteger):
        return 4
    if isinstance(kind, mysql.TINYINT):
        return 1
    if isinstance(kind, SmallInteger):
        return 2
    if isinstance(kind, mysql.MEDIUMINT):
        return 2
    return 3


def same_type(old: TypeEngine[Any], new: TypeEngine[Any]) -> bool:
    """Whether two types store the same values (spelling and display widths aside)."""
    if old._type_affinity is not new._type_affinity:
        return False
    if isinstance(old, Integer):
        return _int_rank(old) == _int_rank(new)
    if isinstance(old, Float) or isinstance(new, Float):
        return _is_double(old) == _is_double(new)
    if isinstance(old, Numeric) and isinstance(new, Numeric):
        return (old.precision, old.scale or 0) == (new.precision, new.scale or 0)
    if isinstance(old, String) and isinstance(new, String):
        return getattr(old, "length", None) == getattr(new, "length", None)
    if isinstance(old, DateTime | Time) and isinstance(new, DateTime | Time):
        return bool(old.timezone) == bool(new.timezone)
    return True


def _is_double(kind: TypeEngine[Any]) -> bool:
    return "DOUBLE" in type(kind).__name__.upper() or (
        isinstance(kind, Float) and (kind.precision or 0) > 24)


def widens(old: TypeEngine[Any], new: TypeEngine[Any]) -> bool:
    """Whether ``new`` holds every value ``old`` holds, so converting cannot fail or lose."""
    if isinstance(old, Integer):
        if isinstance(new, Integer):
            return _int_rank(new) >= _int_rank(old)
        if isinstance(new, Numeric) and not isinstance(new, Float):
            digits = {1: 3, 2: 5, 3: 10, 4: 19}[_int_rank(old)]
            return new.precision is None or new.precision - (new.scale or 0) >= digits
        return isinstance(new, String) and getattr(new, "length", None) is None
    if isinstance(old, Numeric) and not isinstance(old, Float):
        if isinstance(new, Numeric) and not isinstance(new, Float):
            if new.precision is None:
                return True
            if old.precision is None:
                return False
            return (new.precision - (new.scale or 0) >= old.precision - (old.scale or 0)
                    and (new.scale or 0) >= (old.scale or 0))
        return False
    if isinstance(old, Float):
        return isinstance(new, Float) and (_is_double(new) or not _is_double(old))
    if isinstance(old, String) and isinstance(new, String):
        new_length = getattr(new, "length", None)
        old_length = getattr(old, "length", None)
        return new_length is None or (old_length is not None and new_length >= old_length)
    return False


def _default(column: ColumnDefinition) -> str | None:
    """The column's default when it is a plain literal (``7``, ``'x'``, ``'x'::text``)."""
    if column.default is None:
        return None
    value = re.sub(r"::[a-z ]+(\[\])?$", "", column.default.strip(), flags=re.IGNORECASE)
    return value if _LITERAL.match(value) else None


class SchemaApplier:
    """Applies schema changes to target tables on one connection's dialect.

    ``names`` turns a source column name into the target's (``None``: the column is not
    replicated); ``keep`` names target columns that are not the source's (the version
    column) and are never dropped."""

    def __init__(self, options: SchemaOptions) -> None:
        self.options = options

    def apply(
        self, conn: Connection, change: SchemaChange, schema: str | None, name: str,
        table: Table | None, names: dict[str, str | None], keep: set[str],
        old_name: str | None = None,
    ) -> list[str]:
        """Reconcile target ``schema.name`` (reflected as ``table``, None when missing)
        with ``change``; returns the statements run. Raises :class:`Refusal`."""
        quote = conn.dialect.identifier_preparer.quote
        qualified = (quote(schema) + "." if schema else "") + quote(name)
        statements: list[str] = []

        def run(statement: str) -> None:
            conn.execute(text(statement))
            statements.append(statement)

        if change.kind in ("drop", "drop_database"):
            if table is not None and self.options.drop_tables and change.kind == "drop":
                run(f"DROP TABLE {qualified}")
            return statements
        if change.kind == "truncate":
            if table is not None:
                run(f"DELETE FROM {qualified}")
            return statements
        if change.kind == "rename" and table is None and old_name is not None:
            old_qualified = (quote(schema) + "." if schema else "") + quote(old_name)
            if conn.dialect.has_table(conn, old_name, schema=schema):
                run(f"ALTER TABLE {old_qualified} RENAME TO {quote(name)}")
                table = Table(name, MetaData(), schema=schema, autoload_with=conn)
        after = change.after
        if after is None:
            return statements
        target = _target_definition(after, names)
        if table is None:
            if not self.options.create_tables:
                raise Refusal(f"target table {_dotted(schema, name)} does not exist and "
                              "create_tables = false; create it")
            if not target.key_columns:
                raise Refusal(f"{change.qualified_table} has no primary key, so its target "
                              f"table {_dotted(schema, name)} cannot be created for upserts; "
                              "create it by hand with a primary key")
            run(self._create(conn, qualified, target))
            return statements
        self._check_key(table, target, change)
        present = {column.name for column in table.columns}
        for old, new in change.renamed_columns:
            old_target, new_target = names.get(old, old), names.get(new, new)
            if old_target and new_target and old_target in present \
                    and new_target not in present:
                run(f"ALTER TABLE {qualified} RENAME COLUMN {quote(old_target)} "
                    f"TO {quote(new_target)}")
                present = (present - {old_target}) | {new_target}
        reflected = {column.name: column for column in table.columns}
        before = _target_definition(change.before, names) if change.before else None
        for column in target.columns:
            if column.name in present and column.name in reflected:
                earlier = before.column(column.name) if before is not None else None
                if earlier is None or earlier.type != column.type \
                        or earlier.nullable != column.nullable:
                    # changed at the source, or unknown before: the target follows
                    self._retype(conn, run, qualified, reflected[column.name], column, change)
            elif column.name not in present:
                run(f"ALTER TABLE {qualified} ADD COLUMN {self._column(conn, column)}")
        if self.options.drop_columns:
            wanted = {column.name for column in target.columns} | keep
            for extra in sorted(present - wanted):
                run(f"ALTER TABLE {qualified} DROP COLUMN {quote(extra)}")
        return statements

    def _check_key(self, table: Table, target: TableDefinition, change: SchemaChange) -> None:
        current = tuple(column.name for column in table.primary_key.columns)
        if target.key_columns and current != target.key_columns:
            raise Refusal(
                f"{change.qualified_table} now has primary key ({', '.join(target.key_columns)})"
                f" but target table {table.fullname} has ({', '.join(current)}): upserts would "
                "key rows differently; change the target's primary key by hand, then rerun "
                "(or backfill)")

    def _retype(self, conn: Connection, run: Any, qualified: str, reflected: Any,
                column: ColumnDefinition, change: SchemaChange) -> None:
        quote = conn.dialect.identifier_preparer.quote
        new = parse_type(column.type)
        old = reflected.type
        if new is not None and not same_type(old, new):
            if not widens(old, new):
                raise Refusal(
                    f"column {column.name} of {change.qualified_table} changed type to "
                    f"{column.type}, which does not hold every value of the target's "
                    f"{old.compile(dialect=conn.dialect)} (a narrowing or another kind of "
                    f"type); alter the target column by hand, then rerun")
            declared = target_type(column.type, conn.dialect)
            if conn.dialect.name == "postgresql":
                run(f"ALTER TABLE {qualified} ALTER COLUMN {quote(column.name)} TYPE "
                    f"{declared}")
            elif conn.dialect.name in ("mysql", "mariadb"):
                null = "NULL" if reflected.nullable else "NOT NULL"
                run(f"ALTER TABLE {qualified} MODIFY COLUMN {quote(column.name)} {declared} "
                    f"{null}")
            else:
                raise Refusal(f"the {conn.dialect.name} target cannot change column "
                              f"{column.name}'s type to {column.type}; rebuild the table")
        if column.nullable and not reflected.nullable and not reflected.primary_key:
            if conn.dialect.name == "postgresql":
                run(f"ALTER TABLE {qualified} ALTER COLUMN {quote(column.name)} "
                    "DROP NOT NULL")
            elif conn.dialect.name in ("mysql", "mariadb"):
                declared = str(reflected.type.compile(dialect=conn.dialect))
                run(f"ALTER TABLE {qualified} MODIFY COLUMN {quote(column.name)} {declared} "
                    "NULL")

    def _column(self, conn: Connection, column: ColumnDefinition, in_key: bool = False) -> str:
        quote = conn.dialect.identifier_preparer.quote
        declared = f"{quote(column.name)} {target_type(column.type, conn.dialect)}"
        default = _default(column)
        if default is not None:
            declared += f" DEFAULT {default}"
        if in_key or (not column.nullable and default is not None):
            declared += " NOT NULL"
        return declared

    def _create(self, conn: Connection, qualified: str, target: TableDefinition) -> str:
        quote = conn.dialect.identifier_preparer.quote
        columns = [self._column(conn, column, column.name in target.key_columns)
                   for column in target.columns]
        key = ", ".join(quote(name) for name in target.key_columns)
        return f"CREATE TABLE {qualified} ({', '.join(columns)}, PRIMARY KEY ({key}))"


def _target_definition(after: TableDefinition, names: dict[str, str | None]) -> TableDefinition:
    """``after`` with the sink's column mapping applied (renamed, dropped columns)."""
    columns = tuple(
        ColumnDefinition(names.get(c.name, c.name) or "", c.type, c.nullable, c.default)
        for c in after.columns if names.get(c.name, c.name) is not None
    )
    key = tuple(names.get(k, k) or k for k in after.key_columns)
    return TableDefinition(columns, key)


def _dotted(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name

