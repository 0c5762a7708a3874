"""Column lists of the column transforms (``mask``, ``hash``, ``drop_columns``,
``keep_columns``): ``"schema.table.column"`` patterns, the way Debezium names columns.

The part before the last dot is a table pattern matched against ``schema.table`` (or the
table alone for sources without schemas), the last part a column pattern; both are
case-sensitive shell globs (``"shop.*.email"``, ``"*.*.phone_*"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Protocol

from ..events import UNCHANGED, qualified_name
from ..options import REQUIRED, Options, OptionSpec
from ..table_filter import is_glob
from .base import ImageTransform, RowEditor

#: The ``columns`` option of the column transforms.
COLUMNS = OptionSpec(
    "columns", "array of strings", REQUIRED,
    'The columns, as `"schema.table.column"` (`"table.column"` for sources without '
    'schemas), with shell globs in either part: `"shop.*.email"`.')


class SourceNames(Protocol):
    """Names for the generated source of a compiled chain."""

    def constant(self, value: Any, prefix: str = "K") -> str:
        """The name under which the source can use ``value``."""

    def local(self, initial: str) -> str:
        """A new local of the generated function, set to the Python expression
        ``initial`` once before its loop over events (a memo across events)."""


@dataclass(frozen=True)
class TableColumns:
    """The columns that a column list names in one table: ``names`` literally, plus
    ``patterns`` (globs), resolved per set of row columns."""

    names: frozenset[str]
    patterns: tuple[str, ...]
    _by_row: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)

    def in_row(self, row: Mapping[str, Any]) -> tuple[str, ...] | list[str]:
        """The named columns present in ``row``."""
        if not self.patterns:
            return [column for column in self.names if column in row]
        key = tuple(row)
        found = self._by_row.get(key)
        if found is None:
            found = self._by_row[key] = tuple(
                c for c in key if c in self.names or any(fnmatchcase(c, p) for p in self.patterns))
        return found


@dataclass(frozen=True)
class ColumnList:
    """``(table pattern, column pattern)`` pairs read from a ``columns`` option."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def from_options(cls, options: Options, spec: OptionSpec = COLUMNS) -> ColumnList:
        """Read ``spec``: a non-empty array of ``"schema.table.column"`` strings."""
        key = spec.name
        patterns = options.string_list(spec)
        if not patterns:
            raise options.error(key, 'must name at least one column, e.g. ["shop.users.email"]')
        pairs = []
        for index, pattern in enumerate(patterns):
            table, dot, column = pattern.rpartition(".")
            if not dot or not table or not column:
                raise options.error(
                    f"{key}[{index}]", f"{pattern!r} must be schema.table.column (or "
                    "table.column for sources without schemas; globs allowed), e.g. "
                    '"shop.users.email"')
            pairs.append((table, column))
        return cls(tuple(pairs))

    def for_table(self, schema: str, table: str) -> TableColumns | None:
        """The columns named in ``schema.table``; None when the list names none there."""
        name = qualified_name(schema, table)
        columns = [column for pattern, column in self.pairs if fnmatchcase(name, pattern)]
        if not columns:
            return None
        return TableColumns(
            frozenset(c for c in columns if not is_glob(c)),
            tuple(c for c in columns if is_glob(c)),
        )

    def named(self, key: str = "columns") -> list[tuple[str, str, str]]:
        """``(key[i], table pattern, column pattern)`` per entry (see
        :meth:`Transform.columns`)."""
        return [(f"{key}[{index}]", table, column)
                for index, (table, column) in enumerate(self.pairs)]



class ColumnValueTransform(ImageTransform):
    """Replaces the values of the columns a ``columns`` list names by ``replace(value)``
    (``mask``, ``hash``); NULL and ``UNCHANGED`` values stay as they are."""

    def __init__(self, columns: ColumnList, replace: Callable[[Any], Any]) -> None:
        self.column_list = columns
        self.replace = replace

    def row_editor(self, schema: str, table: str) -> RowEditor | None:
        columns = self.column_list.for_table(schema, table)
        if columns is None:
            return None
        replace, in_row = self.replace, columns.in_row
        if not columns.patterns:  # names only: no need to look at the row's columns
            names = tuple(columns.names)

            def edit_named(row: dict[str, Any]) -> None:
                for name in names:
                    if name in row:
                        value = row[name]
                        if value is not None and value is not UNCHANGED:
                            row[name] = replace(value)
            return edit_named

        def edit(row: dict[str, Any]) -> None:
            for name in in_row(row):
                value = row[name]
                if value is not None and value is not UNCHANGED:
                    row[name] = replace(value)
        return edit

    def value_lines(self, names: SourceNames) -> list[str] | None:
        """Python statements that set the local ``value`` (neither NULL nor
        ``UNCHANGED``) to ``replace(value)``, inlined by compiled chains
        (:mod:`~meepo_core.transforms.compiled`). None: the chain calls ``replace``."""
        return None

    def columns(self) -> Sequence[tuple[str, str, str]]:
        return self.column_list.named()
