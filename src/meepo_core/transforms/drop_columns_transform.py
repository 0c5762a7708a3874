"""``drop_columns``: remove columns from the row images (``keep_columns`` is its
opposite)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from ..options import Options
from .base import ImageTransform, RowEditor
from .columns import COLUMNS, ColumnList


class DropColumnsTransform(ImageTransform):
    """``{ type = "drop_columns", columns = ["shop.users.phone"] }``: the named columns are
    removed from ``before`` and ``after`` (the event's ``pk`` is kept as it is)."""

    OPTIONS = (COLUMNS,)
    #: Keep the named columns instead (``keep_columns``).
    keep = False

    def __init__(self, columns: ColumnList) -> None:
        self.column_list = columns

    @classmethod
    def from_options(cls, options: Options) -> Self:
        columns = ColumnList.from_options(options)
        options.done()
        return cls(columns)

    def row_editor(self, schema: str, table: str) -> RowEditor | None:
        columns = self.column_list.for_table(schema, table)
        if columns is None:
            return None
        in_row = columns.in_row
        if self.keep:
            def keep(row: dict[str, Any]) -> None:
                named = in_row(row)
                for column in [c for c in row if c not in named]:
                    del row[column]
            return keep

        if not columns.patterns:
            names = tuple(columns.names)

            def drop_named(row: dict[str, Any]) -> None:
                for name in names:
                    row.pop(name, None)
            return drop_named

        def drop(row: dict[str, Any]) -> None:
            for column in in_row(row):
                del row[column]
        return drop

    def columns(self) -> Sequence[tuple[str, str, str]]:
        return self.column_list.named()
