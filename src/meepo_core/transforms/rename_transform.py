"""``rename``: rename tables and columns."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, Self

from ..events import RowEvent, qualified_name
from ..options import Options, OptionSpec
from .base import EventFunction, Transform, TransformResult, derive

TABLES = OptionSpec(
    "tables", "table", {},
    '`{ "shop.legacy_orders" = "orders" }`: `schema.table` (the table alone for sources '
    'without schemas; globs allowed) to its new name; `"name"` keeps the schema, '
    '`"schema.name"` changes both. The first matching entry wins.')
COLUMNS = OptionSpec(
    "columns", "table", {},
    '`{ "shop.users.mail" = "email" }`: `schema.table.column` (as the source names it, '
    "before a table rename) to its new name, in `before`, `after` and `pk_columns`.")


class RenameTransform(Transform):
    """``{ type = "rename", tables = { "shop.legacy_orders" = "orders" }, columns = {
    "shop.users.mail" = "email" } }``.

    ``tables`` maps a ``schema.table`` (the table alone for sources without schemas;
    globs allowed) to a new name: ``"name"`` keeps the schema, ``"schema.name"`` changes
    both. ``columns`` maps ``"schema.table.column"`` (named as the source names them,
    before a table rename) to a new column name, in ``before``, ``after`` and
    ``pk_columns``. The first matching entry wins."""

    OPTIONS = (TABLES, COLUMNS)

    def __init__(self, tables: Mapping[str, str], columns: Mapping[str, str]) -> None:
        self.tables = dict(tables)
        self.column_map = dict(columns)

    @classmethod
    def from_options(cls, options: Options) -> Self:
        tables = _string_table(options, TABLES)
        columns = _string_table(options, COLUMNS)
        for key in columns:
            if not key.rpartition(".")[0]:
                raise options.error(f"columns.{key}", "must be schema.table.column, e.g. "
                                    '"shop.users.mail" = "email"')
        if not tables and not columns:
            raise options.error("tables", "rename needs tables = { ... } or columns = { ... }")
        options.done()
        return cls(tables, columns)

    def for_table(self, schema: str, table: str) -> EventFunction | None:
        name = qualified_name(schema, table)
        changes: dict[str, Any] = {}
        for pattern, target in self.tables.items():
            if fnmatchcase(name, pattern):
                new_schema, dot, new_table = target.rpartition(".")
                changes["table"] = new_table
                if dot:
                    changes["schema"] = new_schema
                break
        renames: dict[str, str] = {}
        for key, target in self.column_map.items():
            pattern, _, column = key.rpartition(".")
            if fnmatchcase(name, pattern):
                renames.setdefault(column, target)
        if not changes and not renames:
            return None

        def image(row: Any) -> Any:
            if not row or not renames:
                return row
            return {renames.get(c, c): v for c, v in row.items()}

        def renamed(event: RowEvent) -> TransformResult:
            if renames:
                pk_columns = event.pk_columns
                return derive(
                    event, before=image(event.before), after=image(event.after),
                    pk_columns=None if pk_columns is None else tuple(
                        renames.get(c, c) for c in pk_columns), **changes)
            return derive(event, **changes)
        return renamed

    def apply(self, event: RowEvent) -> TransformResult:
        function = self.for_table(event.schema, event.table)
        return event if function is None else function(event)


def _string_table(options: Options, spec: OptionSpec) -> dict[str, str]:
    key = spec.name
    found = options.table(spec)
    for name, value in found.items():
        if not isinstance(value, str) or not value:
            raise options.error(f"{key}.{name}", "must be the new name, a non-empty string")
    return found
