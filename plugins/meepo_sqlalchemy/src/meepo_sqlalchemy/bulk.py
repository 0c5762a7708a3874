"""Events for bulk ORM statements, which bypass the unit of work, via ``do_orm_execute``.

Covered: ``session.execute(insert(Model), [...])``, ``session.execute(update(Model)...)``
(with WHERE criteria, or bulk UPDATE by primary key with a list of parameter dicts),
``session.execute(delete(Model)...)``, ``query.update()`` and ``query.delete()``, and the
same statements on a Core ``Table`` run through the session.

How, and what it costs (the statement itself always runs unchanged):

* UPDATE / DELETE: one pre-select of the matching rows with the statement's WHERE
  criteria, ``FOR UPDATE`` where the dialect has it so nobody changes them between the
  select and the statement (before images). UPDATE then reads the same rows again by
  primary key (after images): so +1 SELECT for DELETE, +2 for UPDATE. RETURNING is not
  added here because on ORM-enabled UPDATE/DELETE it changes the result the application
  gets (ORM rows instead of a cursor result with ``rowcount``).
* INSERT: where the dialect has ``INSERT ... RETURNING`` (PostgreSQL, SQLite >= 3.35,
  MariaDB >= 10.5) the statement gets ``RETURNING`` of every column, so server-generated
  keys and defaults appear in the events at no extra round trip; the application's result
  then has ``rowcount`` but no rows (it asked for none). Without RETURNING (MySQL), every
  row must carry its primary key values, and the rows are read back by key (+1 SELECT);
  otherwise a :class:`BulkCaptureError` is raised before anything is written.

A statement that already has its own RETURNING is never changed; its rows are found by
pre-select as above (and for INSERT by the primary keys in its parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.engine import Result
from sqlalchemy.orm import ORMExecuteState

from meepo_core import RowEvent

from .images import TableFilter, _fetch, _same, make_event, pk_of, plain


class BulkCaptureError(RuntimeError):
    """A bulk statement whose rows cannot be identified; raised before it runs."""


def _table(statement: Any) -> Table | None:
    table = getattr(statement, "table", None)
    if table is None:
        return None
    if hasattr(table, "_deannotate"):  # ORM statements carry an AnnotatedTable
        table = table._deannotate()
    return table if isinstance(table, Table) else None


def _param_rows(state: ORMExecuteState, table: Table) -> list[dict[str, Any]]:
    """The parameter dicts of the statement, keyed by column name."""
    raw = state.parameters
    rows: list[Mapping[str, Any]] = (
        list(raw) if isinstance(raw, Sequence) else [raw] if raw else []
    )
    keys = _attribute_to_column(state, table)
    return [{keys.get(k, k): plain(v) for k, v in row.items()} for row in rows]


def _attribute_to_column(state: ORMExecuteState, table: Table) -> dict[str, str]:
    mapper = state.bind_mapper
    if mapper is None:
        return {}
    found = {}
    for column in table.columns:
        try:
            found[mapper.get_property_by_column(column).key] = column.name
        except Exception:  # column not mapped
            continue
    return found


def capture(state: ORMExecuteState, accept: TableFilter, full_images: bool,
            record: Callable[[list[RowEvent]], None]) -> Result[Any] | None:
    """The ``do_orm_execute`` handler body: runs the statement and records its events."""
    if not (state.is_insert or state.is_update or state.is_delete):
        return None
    table = _table(state.statement)
    if table is None or not accept.accepts(table) or not table.primary_key.columns:
        return None
    conn = state.session.connection(bind_arguments=state.bind_arguments)
    if state.is_insert:
        return _insert(state, table, conn, record)
    params = _param_rows(state, table)
    statement: Any = state.statement
    pk_names = [c.name for c in table.primary_key.columns]
    by_pk = state.is_executemany and statement.whereclause is None and all(
        all(name in row for name in pk_names) for row in params
    )
    if by_pk:  # bulk UPDATE by primary key
        before = _fetch(conn, table, [pk_of(table, row) for row in params])
    else:
        query = select(table)
        if statement.whereclause is not None:
            query = query.where(statement.whereclause)
        if conn.dialect.name != "sqlite":
            query = query.with_for_update()
        before = {}
        for row in conn.execute(query, _where_params(state, params)).mappings():
            image = {key: plain(value) for key, value in row.items()}
            before[(table, pk_of(table, image))] = image
    result = state.invoke_statement()
    events: list[RowEvent] = []
    if state.is_delete:
        events = [make_event(table, "delete", image, None) for image in before.values()]
    else:
        after = _fetch(conn, table, [pk for _, pk in before])
        for key, old in before.items():
            new = after.get(key)
            if new is None:
                continue  # the primary key itself was changed: see README, limitations
            if not all(_same(old.get(k), v) for k, v in new.items()):
                events.append(make_event(table, "update", old, new))
    record(events)
    return result


def _where_params(state: ORMExecuteState, params: list[dict[str, Any]]) -> dict[str, Any]:
    raw = state.parameters
    return dict(raw) if isinstance(raw, Mapping) else {}


def _insert(state: ORMExecuteState, table: Table, conn: Connection,
            record: Callable[[list[RowEvent]], None]) -> Result[Any]:
    statement: Any = state.statement
    params = _param_rows(state, table)
    if not statement._returning and conn.dialect.insert_returning:
        returning = statement.returning(*table.columns, sort_by_parameter_order=bool(params))
        result = state.invoke_statement(statement=returning)
        rows = [{k: plain(v) for k, v in row.items()} for row in result.mappings().all()]
        record([make_event(table, "write", None, row) for row in rows])
        result.rowcount = len(rows)  # type: ignore[attr-defined]  # the caller asked for no rows
        return result
    values = params or [
        {c.key: plain(v) for c, v in (statement._values or {}).items()  # insert().values(...)
         if hasattr(c, "key")}
    ]
    pk_names = [c.name for c in table.primary_key.columns]
    if not values or not all(all(row.get(n) is not None for n in pk_names) for row in values):
        raise BulkCaptureError(
            f"meepo cannot tell which rows this bulk INSERT into {table.name} writes: it has "
            f"its own RETURNING, or the {conn.dialect.name} dialect has no INSERT RETURNING; "
            "give every row its primary key values, or use session.add_all()"
        )
    result = state.invoke_statement()
    found = _fetch(conn, table, [pk_of(table, row) for row in values])
    record([make_event(table, "write", None, found.get((table, pk_of(table, row)), row))
            for row in values])
    return result
