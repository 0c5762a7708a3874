"""Reading DDL statements from the binlog: which tables a statement renames, drops, creates
or alters, and how it changes their columns' kinds (MariaDB's JSON, UUID, INET4 and INET6,
which the binlog's table maps do not show). :func:`table_effects` is the entry; the
statements are the server's own text, as logged (comments and backquotes included).

Only what :mod:`meepo_mysql.schema_history` needs is read: table names in ``RENAME
TABLE``, ``ALTER TABLE``, ``DROP TABLE``/``DATABASE`` and ``CREATE TABLE`` (``... LIKE``
too), column types and column-level ``CHECK (json_valid(col))`` in ``CREATE TABLE``'s
column list and in ``ALTER TABLE``'s column clauses. What it does not follow is said so
(``changed``: ask the server; :class:`Unreadable`: the names themselves).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


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


def truncated_table(statement: str, default_schema: str) -> tuple[str, str] | None:
    """``(schema, table)`` of a ``TRUNCATE [TABLE] name`` statement, or None when the name
    is not understood (no default schema, odd tokens)."""
    reader = _Reader(_tokens(statement), default_schema)
    if not reader.take("TRUNCATE"):
        return None
    reader.take("TABLE")
    try:
        return reader.name()
    except ValueError:
        return None


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
