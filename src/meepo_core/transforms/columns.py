"""Column lists of the column transforms (``mask``, ``hash``, ``drop_columns``,
``keep_columns``): ``"schema.table.column"`` patterns, the way Debezium names columns.

The part before the last dot is a table pattern matched against ``schema.table`` (or the
table alone for sources without schemas), the last part a column pattern; both are
case-sensitive shell globs (``"shop.*.email"``, ``"*.*.phone_*"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from ..events import qualified_name
from ..options import Options
from ..table_filter import is_glob


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
    def from_options(cls, options: Options, key: str = "columns") -> ColumnList:
        """Read ``key``: a non-empty array of ``"schema.table.column"`` strings."""
        patterns = options.string_list(key)
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

    def named(self) -> list[tuple[str, str]]:
        return list(self.pairs)


def map_images(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
    columns: TableColumns, change: Callable[[dict[str, Any], Iterable[str]], None],
) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None] | None:
    """``before`` and ``after``, each copied and changed by ``change(copy, named columns
    in it)`` when it has a named column; None when neither has one (the event passes as it
    is)."""
    named_before = columns.in_row(before) if before else ()
    named_after = columns.in_row(after) if after else ()
    if not named_before and not named_after:
        return None
    new_before: Mapping[str, Any] | None = before
    new_after: Mapping[str, Any] | None = after
    if named_before:
        copy = dict(before)  # type: ignore[arg-type]
        change(copy, named_before)
        new_before = copy
    if named_after:
        copy = dict(after)  # type: ignore[arg-type]
        change(copy, named_after)
        new_after = copy
    return new_before, new_after
