"""From a pgoutput Relation message to a :class:`TablePlan`: how rows of that table
definition become event images and keys.

A plan is rebuilt whenever the server sends the relation again (it does after DDL that
changes the table), so events follow the column set of the moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meepo_core import UNCHANGED, TableDefinition, TableFilter

from .catalog import Catalog, table_definition
from .pgoutput import IDENTITY_FULL, Relation
from .values import Converter


@dataclass(frozen=True, slots=True)
class TablePlan:
    """How rows of one relation become events. ``followed`` is False for tables that the
    pipeline leaves out (their rows are never decoded)."""

    schema: str
    table: str
    followed: bool
    columns: tuple[str, ...] = ()
    converters: tuple[Converter | None, ...] = ()
    key: tuple[int, ...] = ()  # column indexes in key order; empty: the whole row keys
    identity: tuple[int, ...] = ()  # replica identity columns, as a key-only image holds them
    visible: tuple[int, ...] | None = None  # indexes of the columns shown; None: all
    pk_columns: tuple[str, ...] = ()
    definition: TableDefinition | None = None  # shared by every event of this plan

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    def image(self, values: list[Any]) -> dict[str, Any]:
        """The row as events show it (hidden columns left out)."""
        columns = self.columns
        visible = self.visible
        if visible is None:
            return dict(zip(columns, values, strict=True))
        return {columns[i]: values[i] for i in visible}

    def identity_image(self, values: list[Any]) -> dict[str, Any]:
        """Only the replica identity columns: ``before`` when the old row is not sent."""
        columns, visible = self.columns, self.visible
        return {
            columns[i]: values[i] for i in self.identity if visible is None or i in visible
        }

    def pk(self, values: list[Any]) -> Any:
        key = self.key
        if len(key) == 1:
            return values[key[0]]
        if key:
            return tuple([values[i] for i in key])
        visible = self.visible
        return tuple(values if visible is None else [values[i] for i in visible])


def build_plan(relation: Relation, table_filter: TableFilter, catalog: Catalog) -> TablePlan:
    schema, table = relation.schema, relation.name
    if not table_filter.follows(schema, table):
        return TablePlan(schema, table, followed=False)
    names = tuple(column.name for column in relation.columns)
    converters = tuple(catalog.converter(column.type_oid) for column in relation.columns)
    identity = tuple(i for i, column in enumerate(relation.columns) if column.identity)
    catalog.forget_keys(relation.oid)  # the relation changed: its key may have too
    key_names = catalog.key_columns(relation.oid, relation.replica_identity)
    if key_names and all(name in names for name in key_names):
        key = tuple(names.index(name) for name in key_names)
    elif relation.replica_identity != IDENTITY_FULL:
        key = identity  # the catalog moved on since this change was written
    else:
        key = ()
    # key columns stay whatever the transforms drop; a table without a key is keyed by its
    # whole row, so all of them do
    hidden = table_filter.hidden_columns(schema, table, names,
                                         [names[i] for i in key] if key else names)
    visible = tuple(i for i, name in enumerate(names) if name not in hidden) if hidden else None
    pk_columns = tuple(names[i] for i in key) if key else tuple(
        names[i] for i in (visible if visible is not None else range(len(names)))
    )
    shown = None if visible is None else {names[i] for i in visible}
    definition = table_definition(
        catalog.control, relation.oid, catalog.control.settings.database, schema, table,
        tuple(names[i] for i in key), shown)
    return TablePlan(
        schema, table, followed=True, columns=names, converters=converters, key=key,
        identity=identity,
        visible=visible, pk_columns=pk_columns, definition=definition,
    )


def fill_unchanged(new: list[Any], old: list[Any]) -> None:
    """Under REPLICA IDENTITY FULL the old row holds every value in full: take the values
    the server left out of the new row (unchanged TOAST) from it."""
    for index, value in enumerate(new):
        if value is UNCHANGED and old[index] is not UNCHANGED:
            new[index] = old[index]
