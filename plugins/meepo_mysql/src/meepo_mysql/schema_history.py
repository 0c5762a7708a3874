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
(:func:`table_effects` reads the names a statement concerns), and each transaction boundary's
position carries the history as it stands there (``"types"``), so a resumed stream starts
from the definitions of its checkpoint, not from today's. The server is asked only

* when a stream starts without such a checkpoint (for a ``latest`` start the server's
  definitions are those of the start position), and
* for a table that a ``CREATE`` or ``ALTER TABLE`` changed, when the stream next meets it (a
  stream far behind then gets the definition of now, checked column by column against the
  table map by the row decoder).

A renamed table keeps its kinds under its new name (``RENAME TABLE``, also chains and swaps,
and ``ALTER TABLE ... RENAME``), a dropped table loses them (``DROP TABLE``, ``DROP DATABASE``),
``CREATE TABLE ... LIKE`` copies them. A table DDL statement whose names cannot be read makes
the history incomplete: from there on every table is asked of the server once, as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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


# -- reading DDL statements ------------------------------------------------------------------
@dataclass(frozen=True)
class Effect:
    """What a DDL statement does to the table ``schema.table``: ``rename`` (to ``to``),
    ``drop``, ``changed`` (its columns may differ now), ``like`` (created as a copy of
    ``to``), or ``drop_schema`` (every table of ``schema``; ``table`` is empty)."""

    kind: str
    schema: str
    table: str
    to: tuple[str, str] | None = None


@dataclass(frozen=True)
class Unreadable:
    """A table DDL statement whose table names could not be read."""

    why: str


_TOKENS = re.compile(
    r"""(?P<skip>\s+|/\*.*?\*/|--[^\n]*|\#[^\n]*)
      | `(?P<quoted>(?:[^`]|``)*)`
      | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
      | (?P<word>[^\W]+|\$)
      | (?P<punct>.)""",
    re.X | re.S,
)


@dataclass(frozen=True)
class _Token:
    text: str
    word: bool  # an unquoted word (keyword or name)
    quoted: bool = False  # a backquoted name

    @property
    def keyword(self) -> str:
        return self.text.upper() if self.word else ""


def _tokens(statement: str) -> list[_Token]:
    tokens = []
    for match in _TOKENS.finditer(statement):
        kind = match.lastgroup
        if kind == "skip":
            continue
        if kind == "quoted":
            tokens.append(_Token(match.group("quoted").replace("``", "`"), False, True))
        elif kind == "word":
            tokens.append(_Token(match.group(), True))
        else:
            tokens.append(_Token(match.group(), False))
    return tokens


class _Reader:
    def __init__(self, tokens: list[_Token], default_schema: str) -> None:
        self.tokens = tokens
        self.at = 0
        self.default = default_schema

    def peek(self, ahead: int = 0) -> str:
        index = self.at + ahead
        return self.tokens[index].keyword if index < len(self.tokens) else ""

    def take(self, *words: str) -> bool:
        """Skip the keywords ``words`` if they come next."""
        if all(self.peek(i) == word for i, word in enumerate(words)):
            self.at += len(words)
            return True
        return False

    def name(self) -> tuple[str, str]:
        """A table name, ``schema.table`` or ``table`` (in the default schema)."""
        first = self._identifier()
        if self.at < len(self.tokens) and self.tokens[self.at].text == "." \
                and not self.tokens[self.at].word:
            self.at += 1
            return first, self._identifier()
        if not self.default:
            raise ValueError(f"table {first!r} without a schema and no default schema")
        return self.default, first

    def _identifier(self) -> str:
        if self.at >= len(self.tokens):
            raise ValueError("the statement ends where a name should be")
        token = self.tokens[self.at]
        if not (token.word or token.quoted):
            raise ValueError(f"{token.text!r} where a name should be")
        self.at += 1
        return token.text

    def punct(self, text: str) -> bool:
        if self.at < len(self.tokens) and self.tokens[self.at].text == text \
                and not self.tokens[self.at].word:
            self.at += 1
            return True
        return False

    def rest(self) -> Iterator[tuple[int, _Token]]:
        """The remaining tokens with their parenthesis depth."""
        depth = 0
        while self.at < len(self.tokens):
            token = self.tokens[self.at]
            self.at += 1
            if not token.word and token.text == "(":
                depth += 1
            elif not token.word and token.text == ")":
                depth -= 1
            yield depth, token


def table_effects(statement: str, default_schema: str) -> list[Effect] | Unreadable | None:
    """The effects of a DDL statement on table definitions; None when it is not about
    tables (views, indexes, users, ...); :class:`Unreadable` when its names are not
    understood. ``default_schema`` is the statement's current database."""
    reader = _Reader(_tokens(statement), default_schema)
    try:
        return _effects(reader)
    except ValueError as exc:
        return Unreadable(str(exc))


def _effects(r: _Reader) -> list[Effect] | None:
    if r.take("CREATE"):
        replace = r.take("OR", "REPLACE")
        if r.take("TEMPORARY"):
            return None  # session tables: their rows are not in a ROW binlog
        if r.take("DATABASE") or r.take("SCHEMA"):
            r.take("IF", "NOT", "EXISTS")
            schema = r._identifier()
            return [Effect("drop_schema", schema, "")] if replace else None
        if not r.take("TABLE"):
            return None
        r.take("IF", "NOT", "EXISTS")
        schema, table = r.name()
        r.punct("(")
        if r.take("LIKE"):
            return [Effect("like", schema, table, r.name())]
        return [Effect("changed", schema, table)]
    if r.take("ALTER"):
        r.take("ONLINE")
        r.take("IGNORE")
        if not r.take("TABLE"):
            return None
        r.take("IF", "EXISTS")
        schema, table = r.name()
        specs, renamed = 1, None
        for depth, token in r.rest():
            if depth == 0 and not token.word and token.text == ",":
                specs += 1
            elif depth == 0 and token.keyword == "RENAME" and r.peek() not in (
                    "COLUMN", "INDEX", "KEY", "CONSTRAINT"):
                r.take("TO") or r.take("AS")
                renamed = r.name()
        if renamed is None:
            return [Effect("changed", schema, table)]
        moved = Effect("rename", schema, table, renamed)
        return [moved] if specs == 1 else [moved, Effect("changed", *renamed)]
    if r.take("DROP"):
        if r.take("TEMPORARY"):
            return None
        if r.take("DATABASE") or r.take("SCHEMA"):
            r.take("IF", "EXISTS")
            return [Effect("drop_schema", r._identifier(), "")]
        if not r.take("TABLE"):
            return None
        r.take("IF", "EXISTS")
        dropped = [Effect("drop", *r.name())]
        while r.punct(","):
            dropped.append(Effect("drop", *r.name()))
        return dropped
    if r.take("RENAME"):
        if not (r.take("TABLE") or r.take("TABLES")):
            return None
        r.take("IF", "EXISTS")
        renames = []
        while True:
            old = r.name()
            if r.take("NOWAIT"):
                pass
            elif r.take("WAIT"):
                r.at += 1  # the seconds
            if not r.take("TO"):
                raise ValueError("RENAME TABLE without TO")
            renames.append(Effect("rename", *old, r.name()))
            if not r.punct(","):
                return renames
    return None


def followed_state(found: Mapping[tuple[str, str], Kinds]) -> State:
    """A complete history from every table's kinds read now (tables without any left out)."""
    state: State = {}
    for (schema, table), kinds in found.items():
        if kinds:
            state.setdefault(schema, {})[table] = dict(kinds)
    return state
