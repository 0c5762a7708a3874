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
(:func:`table_effects` reads what a statement does to tables and their columns), and each
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


# -- reading DDL statements ------------------------------------------------------------------
@dataclass(frozen=True)
class Effect:
    """What a DDL statement does to the table ``schema.table``: ``rename`` (to ``to``),
    ``drop``, ``define`` (created with the column kinds ``columns``), ``alter`` (its column
    kinds changed by ``columns``: ``(op, column, argument)`` with op ``set`` (argument: the
    kind, "" for none), ``drop``, ``move`` (argument: the new name) or ``unjson`` (its
    ``json_valid`` check dropped)), ``changed`` (its columns may differ in ways not read
    here: ask the server), ``like`` (created as a copy of ``to``), or ``drop_schema``
    (every table of ``schema``; ``table`` is empty)."""

    kind: str
    schema: str
    table: str
    to: tuple[str, str] | None = None
    columns: tuple[tuple[str, str, str], ...] = ()


class _Unsure(ValueError):
    """Column definitions this reader does not follow: the server is asked instead."""


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
        listed = r.punct("(")
        if r.take("LIKE"):
            return [Effect("like", schema, table, r.name())]
        if not listed:  # CREATE TABLE ... SELECT: the types come from the query
            return [Effect("changed", schema, table)]
        body = []
        for depth, token in r.rest():
            if depth < 0:  # the end of the column list
                break
            body.append(token)
        try:
            columns = _created_columns(_split(body))
        except (_Unsure, IndexError):
            return [Effect("changed", schema, table)]
        return [Effect("define", schema, table, columns=columns)]
    if r.take("ALTER"):
        r.take("ONLINE")
        r.take("IGNORE")
        if not r.take("TABLE"):
            return None
        r.take("IF", "EXISTS")
        schema, table = r.name()
        specs = _split([token for _, token in r.rest()])
        renamed = None
        changes: list[tuple[str, str, str]] = []
        unsure = False
        for spec in specs:
            try:
                renamed = _alter_spec(spec, r.default, changes) or renamed
            except (_Unsure, IndexError):
                unsure = True
        effects = []
        if unsure:
            effects.append(Effect("changed", schema, table))
        elif changes:
            effects.append(Effect("alter", schema, table, columns=tuple(changes)))
        if renamed is not None:
            effects.append(Effect("rename", schema, table, renamed))
        return effects
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


_TYPE_KINDS = {"JSON": "json", "UUID": "uuid", "INET4": "inet4", "INET6": "inet6"}
#: Words that start a CREATE TABLE element or an ADD that is not a column.
_NOT_COLUMNS = frozenset({"PRIMARY", "KEY", "INDEX", "UNIQUE", "FULLTEXT", "SPATIAL",
                          "FOREIGN", "CONSTRAINT", "CHECK", "PERIOD", "PARTITION", "SYSTEM"})


def _split(tokens: list[_Token]) -> list[list[_Token]]:
    """``tokens`` cut at the commas outside parentheses."""
    parts: list[list[_Token]] = [[]]
    depth = 0
    for token in tokens:
        if not token.word and not token.quoted:
            if token.text == "(":
                depth += 1
            elif token.text == ")":
                depth -= 1
            elif token.text == "," and depth == 0:
                parts.append([])
                continue
        parts[-1].append(token)
    return [part for part in parts if part]


def _column_name(token: _Token) -> str:
    if not (token.word or token.quoted):
        raise _Unsure(f"{token.text!r} where a column name should be")
    return token.text


def _column_kind(name: str, definition: list[_Token]) -> str:
    """The kind of a column from its definition (type onwards): a JSON, UUID, INET4 or
    INET6 type, or a column-level ``CHECK (json_valid(name))`` as the server names it; ""
    for none."""
    if not definition:
        raise _Unsure(f"column {name!r} without a type")
    head = definition[0].keyword
    if head in ("TIME", "DATETIME", "TIMESTAMP") and len(definition) > 1 \
            and definition[1].text == "(":
        raise _Unsure("fractional temporal columns may use MariaDB 5.3's format")
    kind = _TYPE_KINDS.get(head, "")
    texts = [t.keyword or t.text for t in definition]
    for at, text in enumerate(texts):
        if text == "CHECK" and texts[at + 1:at + 3] == ["(", "JSON_VALID"] \
                and texts[at + 3:at + 7:2] == ["(", ")"] and texts[at + 6:at + 7] == [")"] \
                and definition[at + 4].text.casefold() == name.casefold():
            kind = "json"
    return kind


def _created_columns(elements: list[list[_Token]]) -> tuple[tuple[str, str, str], ...]:
    columns = []
    for element in elements:
        if element[0].keyword in _NOT_COLUMNS:
            continue
        name = _column_name(element[0])
        kind = _column_kind(name, element[1:])
        if kind:
            columns.append(("set", name, kind))
    return tuple(columns)


def _alter_spec(spec: list[_Token], default_schema: str,
                changes: list[tuple[str, str, str]]) -> tuple[str, str] | None:
    """Add one ALTER TABLE clause's column changes to ``changes``; the table's new name
    for ``RENAME [TO|AS] name``."""
    r = _Reader(spec, default_schema)
    if r.take("RENAME"):
        if r.take("COLUMN"):
            old = _column_name(spec[r.at])
            if spec[r.at + 1].keyword != "TO":
                raise _Unsure("RENAME COLUMN without TO")
            changes.append(("move", old, _column_name(spec[r.at + 2])))
            return None
        if r.take("INDEX") or r.take("KEY"):
            return None
        r.take("TO") or r.take("AS")
        return r.name()
    if r.take("ADD"):
        column = r.take("COLUMN")
        r.take("IF", "NOT", "EXISTS")
        if not column and r.peek() in _NOT_COLUMNS:
            return None
        if r.punct("("):
            raise _Unsure("ADD of several columns")
        name = _column_name(spec[r.at])
        changes.append(("set", name, _column_kind(name, spec[r.at + 1:])))
    elif r.take("MODIFY"):
        r.take("COLUMN")
        r.take("IF", "EXISTS")
        name = _column_name(spec[r.at])
        changes.append(("set", name, _column_kind(name, spec[r.at + 1:])))
    elif r.take("CHANGE"):
        r.take("COLUMN")
        r.take("IF", "EXISTS")
        old, new = _column_name(spec[r.at]), _column_name(spec[r.at + 1])
        changes.append(("move", old, new))
        changes.append(("set", new, _column_kind(new, spec[r.at + 2:])))
    elif r.take("DROP"):
        if r.take("CONSTRAINT") or r.take("CHECK"):
            r.take("IF", "EXISTS")
            changes.append(("unjson", _column_name(spec[r.at]), ""))
        elif r.take("COLUMN") or r.peek() not in _NOT_COLUMNS | {"DEFAULT"}:
            r.take("IF", "EXISTS")
            changes.append(("drop", _column_name(spec[r.at]), ""))
    return None  # ALTER COLUMN ... DEFAULT, indexes and table options: kinds unchanged


def followed_state(found: Mapping[tuple[str, str], Kinds]) -> State:
    """A complete history from every table's kinds read now (tables without any left out)."""
    state: State = {}
    for (schema, table), kinds in found.items():
        if kinds:
            state.setdefault(schema, {})[table] = dict(kinds)
    return state
