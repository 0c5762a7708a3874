"""Which tables and columns a pipeline follows.

Table patterns are ``schema.table`` shell globs (``shop.order_*``, ``*.audit``), matched
case-sensitively against each table as its table-map event arrives, so tables created
later are followed too. Column rules hide columns before an event is built, so values
of excluded columns never reach a sink.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

#: Followed only when a pattern names the schema literally (``mysql.*``), not by ``*.*``.
SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
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
            # A glob over schemas (``*.*``) leaves the server's own schemas out.
            if schema not in SYSTEM_SCHEMAS or (parts is not None and not is_glob(parts[0])):
                return True
        return False

    def hidden_columns(self, schema: str, table: str, columns: Iterable[str]) -> frozenset[str]:
        """The columns of ``schema.table`` that must not leave the database."""
        name = f"{schema}.{table}"
        rules = [rule for rule in self.column_rules if fnmatchcase(name, rule.pattern)]
        if not rules:
            return frozenset()
        return frozenset(c for c in columns if not all(rule.keeps(c) for rule in rules))

    def schemas(self) -> list[str] | None:
        """The schemas that may hold followed tables, when every ``tables`` pattern names
        its schema literally (for narrowing information_schema queries); else None."""
        found = set()
        for pattern in self.tables:
            parts = split_pattern(pattern)
            if parts is None or is_glob(parts[0]):
                return None
            found.add(parts[0])
        return sorted(found)

    def rules_hiding(self, schema: str, table: str, column: str) -> list[str]:
        """The patterns of the column rules that hide ``column`` of ``schema.table``."""
        name = f"{schema}.{table}"
        return [rule.pattern for rule in self.column_rules
                if fnmatchcase(name, rule.pattern) and not rule.keeps(column)]
