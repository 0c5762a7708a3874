"""Which tables and columns a database source follows: the ``tables``, ``exclude_tables``
and ``columns`` options that the mysql and postgres sources share.

Table patterns are ``schema.table`` shell globs (``shop.order_*``, ``*.audit``), matched
case-sensitively against each table's schema and name as the server stores them. A glob
over schemas (``*.*``) leaves the server's own schemas (``system_schemas``) out; a pattern
naming one literally (``mysql.*``) follows it. Column rules hide columns before an event is
built, so values of excluded columns never reach a sink.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from .options import Computed, Options, OptionSpec

if TYPE_CHECKING:
    from .transforms.early_drops import DroppedColumns

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
    #: Followed only when a pattern names the schema literally, never through a glob.
    system_schemas: frozenset[str] = frozenset()
    _cache: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)
    #: The columns the pipeline's transforms drop before any step reads them, which a
    #: source may then leave out (see ``Source.drop_columns_early``); None: none.
    dropped: DroppedColumns | None = field(default=None, repr=False)

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
            if schema not in self.system_schemas or (
                    parts is not None and not is_glob(parts[0])):
                return True
        return False

    def hidden_columns(self, schema: str, table: str, columns: Iterable[str],
                       key: Collection[str] = ()) -> frozenset[str]:
        """The columns of ``schema.table`` that must not leave the database, and those
        the pipeline's transforms drop early (:attr:`dropped`) other than the ``key``
        columns (all of them for a table keyed by its whole row)."""
        name = f"{schema}.{table}"
        rules = [rule for rule in self.column_rules if fnmatchcase(name, rule.pattern)]
        columns = list(columns)
        hidden = frozenset(c for c in columns if not all(rule.keeps(c) for rule in rules)) \
            if rules else frozenset()
        if self.dropped is not None:
            hidden |= self.dropped(schema, table, columns) - frozenset(key)
        return hidden

    def rules_hiding(self, schema: str, table: str, column: str) -> list[str]:
        """The patterns of the column rules that hide ``column`` of ``schema.table``."""
        name = f"{schema}.{table}"
        return [rule.pattern for rule in self.column_rules
                if fnmatchcase(name, rule.pattern) and not rule.keeps(column)]

    def visible_columns(
        self, catalog_rows: Iterable[tuple[Any, Any, Any]]
    ) -> dict[str, list[str]]:
        """``{"schema.table": [column, ...]}`` of the followed tables, each without its
        hidden columns, from ``(schema, table, column)`` rows of a catalog in column
        order."""
        found: dict[str, list[str]] = {}
        for schema, table, column in catalog_rows:
            schema, table = str(schema), str(table)
            if self.follows(schema, table):
                found.setdefault(f"{schema}.{table}", []).append(str(column))
        for name, columns in found.items():
            schema, table = name.split(".", 1)
            hidden = self.hidden_columns(schema, table, columns)
            found[name] = [c for c in columns if c not in hidden]
        return found

    def schemas(self) -> list[str] | None:
        """The schemas that may hold followed tables, when every ``tables`` pattern names
        its schema literally (for narrowing catalog queries); else None."""
        found = set()
        for pattern in self.tables:
            parts = split_pattern(pattern)
            if parts is None or is_glob(parts[0]):
                return None
            found.add(parts[0])
        return sorted(found)

    def literal_tables(self) -> list[tuple[int, str, str]]:
        """``(index in tables, schema, table)`` of the patterns without globs (``meepo
        check`` makes sure those tables exist: a typo would follow nothing)."""
        found = []
        for index, pattern in enumerate(self.tables):
            parts = split_pattern(pattern)
            if parts is not None and not is_glob(pattern):
                found.append((index, *parts))
        return found


def parse_table_filter(options: Options, default_tables: list[str], example_schema: str,
                       system_schemas: frozenset[str],
                       specs: tuple[OptionSpec, OptionSpec, OptionSpec] | None = None,
                       ) -> TableFilter:
    """Read ``tables``, ``exclude_tables`` and ``columns`` from a source's options; every
    error names its key and shows a pattern with ``example_schema``. ``specs``: the
    source's declarations of the three (see :class:`~meepo_core.options.OptionSpec`),
    which then supply the defaults, except a :class:`~meepo_core.options.Computed` one of
    ``tables`` (``default_tables`` is it)."""
    example = f"\"{example_schema}.orders\""

    def check(key: str, pattern: str) -> None:
        if split_pattern(pattern) is None:
            raise options.error(
                key, f"{pattern!r} must be schema.table (globs allowed), e.g. {example}")

    tables_key, exclude_key, columns_key = specs or ("tables", "exclude_tables", "columns")
    if specs is None or isinstance(specs[0].default, Computed):
        tables = options.string_list(tables_key, default_tables)
    else:
        tables = options.string_list(tables_key)
    if not tables:
        raise options.error("tables", f"must name at least one table, e.g. [{example}]")
    for index, pattern in enumerate(tables):
        check(f"tables[{index}]", pattern)
    exclude = options.string_list(exclude_key) if specs else options.string_list(exclude_key, [])
    for index, pattern in enumerate(exclude):
        check(f"exclude_tables[{index}]", pattern)
    rules = []
    rules_table = options.table(columns_key) if specs else options.table(columns_key, {})
    for pattern, rule in rules_table.items():
        key = f"columns.{pattern}"
        check(key, pattern)
        rules.append(_column_rule(options, key, pattern, rule))
    return TableFilter(tuple(tables), tuple(exclude), tuple(rules), system_schemas)


def _column_rule(options: Options, key: str, pattern: str, rule: Any) -> ColumnRule:
    if not isinstance(rule, dict) or set(rule) - {"include", "exclude"} or not rule:
        raise options.error(
            key, "must be a table with include = [...] or exclude = [...], e.g. "
            "{ exclude = [\"password_hash\"] }"
        )
    lists: dict[str, tuple[str, ...]] = {}
    for name in ("include", "exclude"):
        value = rule.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise options.error(f"{key}.{name}", "must be an array of column names")
        lists[name] = tuple(value)
    return ColumnRule(pattern, lists.get("include"), lists.get("exclude", ()))
