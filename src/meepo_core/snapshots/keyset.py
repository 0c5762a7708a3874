"""The SQL conditions of a snapshot chunk, for sources that read chunks with SQL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .jobs import SnapshotTable


def keyset_filter(
    table: SnapshotTable,
    after: tuple[Any, ...] | None,
    until: tuple[Any, ...] | None,
    where: Mapping[str, Any] | None,
    quote: Callable[[str], str],
    placeholder: Callable[[str], str],
) -> tuple[list[str], list[Any]]:
    """The SQL conditions (to join with AND) and their parameters that select a chunk's
    rows: key above ``after``, key at most ``until``, columns equal to ``where``'s values
    (None: IS NULL). ``quote`` quotes a column name; ``placeholder(column)`` is the
    parameter marker for a value of that column (``%s``, or a cast of it)."""
    key = ", ".join(quote(name) for name in table.key)
    marks = ", ".join(placeholder(name) for name in table.key)
    conditions: list[str] = []
    params: list[Any] = []
    if after is not None:
        conditions.append(f"({key}) > ({marks})")
        params += list(after)
    if until is not None:
        conditions.append(f"({key}) <= ({marks})")
        params += list(until)
    for name, value in (where or {}).items():
        if value is None:
            conditions.append(f"{quote(name)} IS NULL")
        else:
            conditions.append(f"{quote(name)} = {placeholder(name)}")
            params.append(value)
    return conditions, params
