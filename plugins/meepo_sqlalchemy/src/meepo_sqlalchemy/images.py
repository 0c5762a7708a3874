"""Row events from the ORM unit of work: which rows a flush wrote, and their images.

Contract: :func:`snapshot` runs in ``before_flush`` and remembers, for every dirty or
deleted object, which column attributes changed and their old values (from attribute
history); :func:`flush_events` runs in ``after_flush`` and turns the flushed objects into
events, one per mapped table row (joined inheritance gives one event per table). With
``full_images`` the columns the session never loaded are read from the database (one
SELECT per table and flush, only for objects that need it), so images are complete.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, Table, and_, or_, select, tuple_
from sqlalchemy.orm import InstanceState, Mapper, Session
from sqlalchemy.orm.exc import UnmappedColumnError
from sqlalchemy.sql import ClauseElement, ColumnElement

from meepo_core import Action, RowEvent

MISSING: Any = object()
#: Placeholder until commit; replaced when the transaction is published or written.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TableFilter:
    """Which tables produce events: ``None`` means all; otherwise names given as
    ``table`` or ``schema.table``."""

    names: frozenset[str] | None = None

    @classmethod
    def of(cls, tables: Iterable[str | Table] | None) -> TableFilter:
        if tables is None:
            return cls(None)
        names = set()
        for table in tables:
            names.add(table if isinstance(table, str) else qualified_name(table))
        return cls(frozenset(names))

    def accepts(self, table: Table) -> bool:
        return self.names is None or table.name in self.names or (
            qualified_name(table) in self.names
        )


def qualified_name(table: Table) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


def plain(value: Any) -> Any:
    """Values as sinks expect them: enums by value, UUIDs as strings."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def pk_of(table: Table, image: dict[str, Any]) -> Any:
    """The primary key from ``image``: a scalar, or a tuple in key order."""
    values = tuple(image.get(col.name) for col in table.primary_key.columns)
    return values[0] if len(values) == 1 else values


def make_event(table: Table, action: Action, before: dict[str, Any] | None,
               after: dict[str, Any] | None) -> RowEvent:
    image = after if after is not None else before
    assert image is not None
    return RowEvent(
        schema=table.schema or "", table=table.name, action=action,
        pk=pk_of(table, image), before=before, after=after, committed_at=EPOCH,
        pk_columns=tuple(column.name for column in table.primary_key.columns),
    )


@dataclass
class _Old:
    """Before-flush knowledge of one object: changed keys and old values where known."""

    changed: set[str] = field(default_factory=set)
    old: dict[str, Any] = field(default_factory=dict)


@dataclass
class Snapshot:
    objects: dict[InstanceState[Any], _Old] = field(default_factory=dict)
    rows: dict[tuple[Table, Any], dict[str, Any]] = field(default_factory=dict)  # from the DB


def _columns(mapper: Mapper[Any], table: Table) -> Iterator[tuple[Column[Any], str]]:
    for column in table.columns:
        try:
            prop = mapper.get_property_by_column(column)
        except UnmappedColumnError:
            continue
        yield column, prop.key


def _tables(mapper: Mapper[Any], accept: TableFilter) -> list[Table]:
    return [t for t in mapper.tables if isinstance(t, Table) and accept.accepts(t)]


def _old_values(state: InstanceState[Any], keys: Iterable[str]) -> _Old:
    info = _Old()
    for key in keys:
        history = state.attrs[key].history
        if history.added or history.deleted:
            current = history.added[0] if history.added else None
            previous = history.deleted[0] if history.deleted else MISSING
            if previous is not MISSING and not isinstance(current, ClauseElement) and (
                _same(previous, current)
            ):
                continue
            info.changed.add(key)
            if previous is not MISSING:
                info.old[key] = previous
        elif history.unchanged:
            info.old[key] = history.unchanged[0]
    return info


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays that do not compare to a bool
        return a is b


def snapshot(session: Session, accept: TableFilter, full_images: bool) -> Snapshot:
    """Run in ``before_flush``: remember changes and old values of dirty/deleted objects."""
    snap = Snapshot()
    need: dict[Table, list[InstanceState[Any]]] = {}
    for obj in [*session.dirty, *session.deleted]:
        state: InstanceState[Any] = _inspect(obj)
        if state.key is None:
            continue
        mapper = state.mapper
        tables = _tables(mapper, accept)
        if not tables:
            continue
        keys = {key for t in tables for _, key in _columns(mapper, t)}
        info = _old_values(state, keys)
        snap.objects[state] = info
        if full_images and any(key not in info.old for key in keys):
            for table in tables:
                need.setdefault(table, []).append(state)
    if need:
        conn = session.connection()
        for table, states in need.items():
            pks = [_identity_pk(table, s) for s in states]
            snap.rows.update(_fetch(conn, table, pks))
    return snap


def _inspect(obj: Any) -> InstanceState[Any]:
    from sqlalchemy import inspect

    return inspect(obj)  # type: ignore[no-any-return]


def _identity_pk(table: Table, state: InstanceState[Any]) -> Any:
    """The table's primary key of a persistent object, from its identity (no load)."""
    mapper = state.mapper
    identity = state.key[1] if state.key is not None else ()
    by_column = dict(zip(mapper.primary_key, identity, strict=False))
    values = []
    for column in table.primary_key.columns:
        value = by_column.get(column, MISSING)
        if value is MISSING:  # joined inheritance: the sub-table's pk mirrors the base's
            key = mapper.get_property_by_column(column).key
            value = state.dict.get(key)
        values.append(value)
    return values[0] if len(values) == 1 else tuple(values)


def _fetch(conn: Connection, table: Table,
           pks: list[Any]) -> dict[tuple[Table, Any], dict[str, Any]]:
    """Current rows of ``table`` for ``pks``, keyed by ``(table, pk)``."""
    found: dict[tuple[Table, Any], dict[str, Any]] = {}
    pk_cols = list(table.primary_key.columns)
    for start in range(0, len(pks), 500):
        chunk = pks[start:start + 500]
        where: ColumnElement[bool]
        if len(pk_cols) == 1:
            where = pk_cols[0].in_(chunk)
        elif conn.dialect.name == "sqlite":
            where = or_(*(and_(*(c == v for c, v in zip(pk_cols, pk, strict=True)))
                          for pk in chunk))
        else:
            where = tuple_(*pk_cols).in_(chunk)
        for row in conn.execute(select(table).where(where)).mappings():
            image = {key: plain(value) for key, value in row.items()}
            found[(table, pk_of(table, image))] = image
    return found


def flush_events(session: Session, accept: TableFilter, full_images: bool,
                 snap: Snapshot | None) -> list[RowEvent]:
    """Run in ``after_flush``: events for what this flush wrote, in order: inserts (in the
    order objects were added), then updates, then deletes."""
    snap = snap or Snapshot()
    pending: list[tuple[Table, Action, dict[str, Any] | None, dict[str, Any] | None]] = []
    new_states = sorted((_inspect(o) for o in session.new), key=lambda s: s.insert_order or 0)
    for state in new_states:
        for table in _tables(state.mapper, accept):
            after = {col.name: plain(state.dict.get(key, MISSING))
                     for col, key in _columns(state.mapper, table)}
            pending.append((table, "write", None, after))
    for obj in session.dirty:
        state = _inspect(obj)
        if state in snap.objects or state.key is not None:
            pending.extend(_update(state, accept, snap))
    for obj in session.deleted:
        state = _inspect(obj)
        info = snap.objects.get(state) or _old_values(state, _all_keys(state, accept))
        for table in _tables(state.mapper, accept):
            db_row = snap.rows.get((table, _identity_pk(table, state)), {})
            old = {col.name: plain(info.old.get(key, db_row.get(col.name, MISSING)))
                   for col, key in _columns(state.mapper, table)}
            pending.append((table, "delete", _with_pk(table, state, old), None))
    if full_images:
        _fill_after_images(session, pending)
    events = []
    for table, action, raw_before, raw_after in pending:
        old_image, new_image = _known(raw_before), _known(raw_after)
        if action == "update" and old_image is not None and new_image is not None and (
            set(old_image) == set(new_image)
            and all(_same(old_image[k], new_image[k]) for k in new_image)
        ):
            continue  # nothing changed in the row (e.g. a value set to what it was)
        events.append(make_event(table, action, old_image, new_image))
    return events


def _all_keys(state: InstanceState[Any], accept: TableFilter) -> set[str]:
    return {key for t in _tables(state.mapper, accept) for _, key in _columns(state.mapper, t)}


def _update(state: InstanceState[Any], accept: TableFilter, snap: Snapshot) -> Iterator[
        tuple[Table, Action, dict[str, Any] | None, dict[str, Any] | None]]:
    keys = _all_keys(state, accept)
    info = snap.objects.get(state, _Old())
    late = _old_values(state, keys)  # changes made during the flush, e.g. synced foreign keys
    changed = info.changed | late.changed
    old = {**late.old, **info.old}
    for table in _tables(state.mapper, accept):
        columns = list(_columns(state.mapper, table))
        if not any(key in changed for _, key in columns):
            continue
        db_row = snap.rows.get((table, _identity_pk(table, state)), {})
        before, after = {}, {}
        for col, key in columns:
            before[col.name] = plain(old.get(key, db_row.get(col.name, MISSING)))
            value = state.dict.get(key, MISSING)
            if value is MISSING and key not in changed:
                value = before[col.name]
            after[col.name] = plain(value)
        yield table, "update", _with_pk(table, state, before), _with_pk(table, state, after)


def _with_pk(table: Table, state: InstanceState[Any], image: dict[str, Any]) -> dict[str, Any]:
    """``image`` with its primary key columns taken from the identity where not loaded."""
    if any(image.get(c.name, MISSING) is MISSING for c in table.primary_key.columns):
        pk = _identity_pk(table, state)
        values = pk if isinstance(pk, tuple) else (pk,)
        for column, value in zip(table.primary_key.columns, values, strict=True):
            if image.get(column.name, MISSING) is MISSING:
                image[column.name] = value
    return image


def _fill_after_images(session: Session, pending: list[
        tuple[Table, Action, dict[str, Any] | None, dict[str, Any] | None]]) -> None:
    """Read the rows whose after image lacks columns (server defaults, SQL expressions,
    unloaded attributes) from the database, inside the flushing transaction."""
    need: dict[Table, list[Any]] = {}
    for table, _action, _before, after in pending:
        if after is not None and any(v is MISSING for v in after.values()):
            need.setdefault(table, []).append(pk_of(table, after))
    if not need:
        return
    conn = session.connection()
    rows: dict[tuple[Table, Any], dict[str, Any]] = {}
    for table, pks in need.items():
        rows.update(_fetch(conn, table, pks))
    for table, _action, _before, after in pending:
        if after is not None and any(v is MISSING for v in after.values()):
            row = rows.get((table, pk_of(table, after)), {})
            for name, value in after.items():
                if value is MISSING and name in row:
                    after[name] = row[name]


def _known(image: dict[str, Any] | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {k: v for k, v in image.items() if v is not MISSING}
