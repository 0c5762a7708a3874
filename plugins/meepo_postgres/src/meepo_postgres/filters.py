"""Which tables and columns a pipeline follows.

Table patterns are ``schema.table`` shell globs (``public.order_*``, ``*.audit``), matched
case-sensitively against each table's schema and name as PostgreSQL stores them. Column
rules hide columns before an event is built, so values of excluded columns never reach a
sink.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

#: Followed only when a pattern names the schema literally, never through a schema glob.
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})
_GLOB_CHARS = frozenset("*?[")


def is_glob(text: str) -> bool:
    return any(char in _GLOB_CHARS for char in text)


def split_pattern(pattern: str) -> tuple[str, str] | None:
    """``("schema", "table")`` of ``schema.table``, or None when it is not of that form."""
    schema, dot, table = pattern.partition(".")
    if not dot or not schema or not table:
        return None
    return schema, table


@dataclass(frozen=True)
class ColumnRule:
    """``include`` keeps only the named columns; ``exclude`` drops them (globs allowed)."""

    pattern: str
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()

    def keeps(self, column: str) -> bool:
        if self.include is not None and not any(fnmatchcase(column, p) for p in self.include):
            return False
        return not any(fnmatchcase(column, p) for p in self.exclude)


@dataclass
class TableFilter:
    """Decides, per ``schema.table``, whether it is followed and which columns it hides."""

    tables: Sequence[str] = ("*.*",)
    exclude_tables: Sequence[str] = ()
    column_rules: Sequence[ColumnRule] = ()
    _cache: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    def follows(self, schema: str, table: str) -> bool:
        key = (schema, table)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._decide(schema, table)
        return found

    def _decide(self, schema: str, table: str) -> bool:
        name = f"{schema}.{table}"
        if any(fnmatchcase(name, p) for p in self.exclude_tables):
            return False
        for pattern in self.tables:
            if not fnmatchcase(name, pattern):
                continue
            parts = split_pattern(pattern)
            if schema not in SYSTEM_SCHEMAS or (parts is not None and not is_glob(parts[0])):
                return True
        return False

    def literal_tables(self) -> list[tuple[int, str, str]]:
        """``(index in tables, schema, table)`` of the patterns without globs."""
        found = []
        for index, pattern in enumerate(self.tables):
            parts = split_pattern(pattern)
            if parts is not None and not is_glob(pattern):
                found.append((index, *parts))
        return found

    def hidden_columns(self, schema: str, table: str, columns: Iterable[str]) -> frozenset[str]:
        """The columns of ``schema.table`` that must not leave the database."""
        name = f"{schema}.{table}"
        rules = [rule for rule in self.column_rules if fnmatchcase(name, rule.pattern)]
        if not rules:
            return frozenset()
        return frozenset(c for c in columns if not all(rule.keeps(c) for rule in rules))
