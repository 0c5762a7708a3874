"""``drop_columns``: remove columns from the row images (``keep_columns`` is its
opposite)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from ..events import RowEvent
from ..options import Options
from .base import EventFunction, Transform, TransformResult, with_images
from .columns import ColumnList


class DropColumnsTransform(Transform):
    """``{ type = "drop_columns", columns = ["shop.users.phone"] }``: the named columns are
    removed from ``before`` and ``after`` (the event's ``pk`` is kept as it is)."""

    #: Keep the named columns instead (``keep_columns``).
    keep = False

    def __init__(self, columns: ColumnList) -> None:
        self.column_list = columns

    @classmethod
    def from_options(cls, options: Options) -> Self:
        columns = ColumnList.from_options(options)
        options.done()
        return cls(columns)

    def for_table(self, schema: str, table: str) -> EventFunction | None:
        columns = self.column_list.for_table(schema, table)
        if columns is None:
            return None
        keep = self.keep

        def image(row: Any) -> Any:
            if not row:
                return row
            named = columns.in_row(row)
            if keep:  # in the row's order
                return {c: v for c, v in row.items() if c in named} if len(named) != len(
                    row) else row
            if not named:
                return row
            return {c: v for c, v in row.items() if c not in named}

        def dropped(event: RowEvent) -> TransformResult:
            before, after = image(event.before), image(event.after)
            if before is event.before and after is event.after:
                return event
            return with_images(event, before, after)
        return dropped

    def apply(self, event: RowEvent) -> TransformResult:
        function = self.for_table(event.schema, event.table)
        return event if function is None else function(event)

    def columns(self) -> Sequence[tuple[str, str]]:
        return self.column_list.named()

