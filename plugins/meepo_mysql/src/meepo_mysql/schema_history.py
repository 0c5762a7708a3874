"""Which column facts the binlog leaves out were in force at each binlog position.

A table map names every column and its binlog type, but not MariaDB's JSON (stored as
LONGTEXT with a ``json_valid`` check), INET4, INET6 and UUID (stored as BINARY) or the
MariaDB 5.3 temporal format: those "kinds" come from ``information_schema``, which knows
only the tables as they are *now*. A stream that reads events written before a DDL
statement (it was behind, stopped, or replays) must not take today's definitions for them:
after ``RENAME TABLE t TO t2`` the name ``t`` has no definition any more, after ``DROP`` and
``CREATE`` it has another one.

:class:`SchemaHistory` therefore holds the kinds of every table as of the stream's position
and moves with it: the stream applies each DDL statement to it in commit order
(:mod:`meepo_mysql.ddl` reads what a statement does to tables and their columns), and each
transaction boundary's position carries the history as it stands there (``"types"``), so a
resumed stream starts from the definitions of its checkpoint, not from today's.

A renamed table keeps its kinds under its new name (``RENAME TABLE``, also chains and swaps,
and ``ALTER TABLE ... RENAME``), a dropped table loses them (``DROP TABLE``, ``DROP
DATABASE``), ``CREATE TABLE ... LIKE`` copies them; the column list of ``CREATE TABLE`` and
the column clauses of ``ALTER TABLE`` (``ADD``, ``MODIFY``, ``CHANGE``, ``DROP``, ``RENAME
COLUMN``, ``DROP CONSTRAINT``) give the new kinds: a JSON, UUID, INET4 or INET6 type, or a
column-level ``CHECK (json_valid(col))``, as ``information_schema`` would show them. The
server is asked only

* when a stream starts without such a checkpoint (for a ``latest`` start the server's
  definitions are those of the start position), and
* for a table whose new columns a statement does not spell out (``CREATE TABLE ...
  SELECT``, ``ADD (a, b)``, fractional temporal columns, which may have MariaDB 5.3's
  format), when the stream next meets it: a stream far behind then gets the definition of
  now, checked column by column against the table map by the row decoder.

A table DDL statement whose table names cannot be read makes the history incomplete: from
there on every table is asked of the server once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .ddl import Effect, Unreadable, table_effects

log = logging.getLogger("meepo.mysql")

#: ``{column: "json" | "inet4" | "inet6" | "uuid" | "mariadb53"}`` of one table.
Kinds = dict[str, str]
#: ``{schema: {table: kinds, or None while it must be read from the server}}``.
State = dict[str, dict[str, Kinds | None]]
#: Reads a table's kinds from the server now.
Reader = Callable[[str, str], Kinds]

_KINDS = frozenset({"json", "inet4", "inet6", "uuid", "mariadb53"})


class SchemaHistory:
    """The kinds of every table at the stream's position (see the module docstring).

    ``state`` is replaced, never changed in place, so a position that carries it keeps the
    history as it was at that position. Tables absent from a complete history have no
    such column.
    """

    def __init__(self, read: Reader, state: State | None) -> None:
        self._read = read
        #: None: incomplete, every table is read from the server when first met.
        self.state: State | None = state
        self._read_now: dict[tuple[str, str], Kinds] = {}  # while incomplete

    @classmethod
    def resumed(cls, read: Reader, position: Any, seed: Callable[[], State]) -> SchemaHistory:
        """The history a checkpoint ``position`` carries, or ``seed()`` (every table's
        kinds now) when it carries none."""
        saved = position.get("types") if isinstance(position, dict) else None
        state = _valid_state(saved)
        if saved is not None and state is None:
            log.warning("the checkpoint's column types are not readable; reading them from "
                        "the server")
        return cls(read, state if state is not None else seed())

    def kinds(self, schema: str, table: str) -> Kinds:
        """The kinds of ``schema.table`` at the stream's position."""
        state = self.state
        if state is None:
            found = self._read_now.get((schema, table))
            if found is None:
                found = self._read_now[(schema, table)] = self._read(schema, table)
            return found
        tables = state.get(schema)
        if tables is None or table not in tables:
            return {}
        known = tables[table]
        if known is None:  # changed by a DDL statement: read it now
            known = self._read(schema, table)
            self._set(schema, table, known)
        return known

    def apply(self, statement: str, default_schema: str) -> None:
        """Apply a DDL statement (in commit order)."""
        effects = table_effects(statement, default_schema)
        if effects is None:
            return
        if self.state is None:
            self._read_now.clear()
            return
        if isinstance(effects, Unreadable):
            log.warning("cannot tell which tables this statement changes (%s): column types "
                        "are read from the server from here on: %.200s", effects.why,
                        statement)
            self.state = None
            return
        for effect in effects:
            self._effect(effect)

    def _effect(self, effect: Effect) -> None:
        state = self.state
        assert state is not None
        if effect.kind == "drop_schema":
            if effect.schema in state:
                self.state = {s: t for s, t in state.items() if s != effect.schema}
            return
        if effect.kind in ("rename", "like"):
            assert effect.to is not None
            source = effect.to if effect.kind == "like" else (effect.schema, effect.table)
            tables = state.get(source[0], {})
            # absent: a table without such columns, and so is its new name
            kinds = tables.get(source[1], {})
            if effect.kind == "rename":
                self._set(effect.schema, effect.table, {})
                self._set(*effect.to, kinds)
            else:
                self._set(effect.schema, effect.table, kinds)
        elif effect.kind == "drop":
            self._set(effect.schema, effect.table, {})
        elif effect.kind == "define":
            self._set(effect.schema, effect.table,
                      {column: kind for _, column, kind in effect.columns})
        elif effect.kind == "alter":
            current = state.get(effect.schema, {}).get(effect.table, {})
            if current is not None:  # None: not known yet, read when met
                self._set(effect.schema, effect.table, _altered(current, effect.columns))
        else:  # changed: read when the stream meets the table next
            self._set(effect.schema, effect.table, None)

    def _set(self, schema: str, table: str, kinds: Kinds | None) -> None:
        """Set (a copy of the state) ``schema.table``'s kinds; ``{}`` removes it."""
        state = dict(self.state or {})
        tables = dict(state.get(schema, {}))
        if kinds == {}:
            if table not in tables:
                return
            del tables[table]
        else:
            tables[table] = kinds
        if tables:
            state[schema] = tables
        else:
            state.pop(schema, None)
        self.state = state


def _altered(kinds: Kinds, changes: tuple[tuple[str, str, str], ...]) -> Kinds:
    """``kinds`` after ALTER TABLE's column changes (column names compare without case)."""
    found = dict(kinds)

    def pop(name: str) -> str | None:
        for column in list(found):
            if column.casefold() == name.casefold():
                return found.pop(column)
        return None

    for op, column, argument in changes:
        if op == "set":
            pop(column)
            if argument:
                found[column] = argument
        elif op == "drop":
            pop(column)
        elif op == "move":
            kind = pop(column)
            if kind is not None:
                found[argument] = kind
        elif op == "unjson":
            kind = pop(column)
            if kind is not None and kind != "json":
                found[column] = kind
    return found


def _valid_state(data: Any) -> State | None:
    if not isinstance(data, dict):
        return None
    for tables in data.values():
        if not isinstance(tables, dict):
            return None
        for kinds in tables.values():
            if kinds is not None and not (isinstance(kinds, dict) and all(
                    isinstance(k, str) and v in _KINDS for k, v in kinds.items())):
                return None
    return {str(s): {str(t): (dict(k) if k is not None else None) for t, k in tables.items()}
            for s, tables in data.items()}


def followed_state(found: Mapping[tuple[str, str], Kinds]) -> State:
    """A complete history from every table's kinds read now (tables without any left out)."""
    state: State = {}
    for (schema, table), kinds in found.items():
        if kinds:
            state.setdefault(schema, {})[table] = dict(kinds)
    return state
