"""``mask``: replace column values by a fixed string, NULL, or a partly hidden value."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self

from ..events import UNCHANGED, RowEvent
from ..options import Options
from .base import EventFunction, Transform, TransformResult, with_images
from .columns import ColumnList, map_images

MODES = ("fixed", "null", "partial")


class MaskTransform(Transform):
    """``{ type = "mask", columns = ["shop.users.phone"], mode = "partial", keep_last = 4 }``.

    ``mode = "fixed"`` (the default) replaces each value by ``value`` (default
    ``"****"``); ``"null"`` by NULL; ``"partial"`` keeps the first ``keep_first`` and last
    ``keep_last`` characters of the value's text and replaces the others by ``char``
    (default ``"*"``), keeping its length. NULL stays NULL and an ``UNCHANGED`` value stays
    ``UNCHANGED`` in every mode (neither reveals anything).
    """

    def __init__(self, columns: ColumnList, mask: Callable[[Any], Any]) -> None:
        self.column_list = columns
        self.mask = mask

    @classmethod
    def from_options(cls, options: Options) -> Self:
        columns = ColumnList.from_options(options)
        mode = options.choice("mode", MODES, "fixed")
        value = options.string("value", None)
        keep_first = options.integer("keep_first", None, minimum=0)
        keep_last = options.integer("keep_last", None, minimum=0)
        char = options.string("char", None)
        extra: dict[str, object] = {"value": value} if mode != "fixed" else {}
        extra.update({} if mode == "partial" else {
            "keep_first": keep_first, "keep_last": keep_last, "char": char})
        for key, given in extra.items():
            if given is not None:
                raise options.error(key, f"does not apply to mode = {mode!r}")
        if char is not None and len(char) != 1:
            raise options.error("char", f"must be one character, not {char!r}")
        options.done()
        if mode == "null":
            return cls(columns, lambda _value: None)
        if mode == "partial":
            return cls(columns, partial_mask(keep_first or 0, keep_last or 0, char or "*"))
        fixed = "****" if value is None else value
        return cls(columns, lambda _value: fixed)

    def for_table(self, schema: str, table: str) -> EventFunction | None:
        columns = self.column_list.for_table(schema, table)
        if columns is None:
            return None
        mask = self.mask

        def change(row: dict[str, Any], names: Iterable[str]) -> None:
            for name in names:
                value = row[name]
                if value is not None and value is not UNCHANGED:
                    row[name] = mask(value)

        def masked(event: RowEvent) -> TransformResult:
            images = map_images(event.before, event.after, columns, change)
            return event if images is None else with_images(event, *images)
        return masked

    def apply(self, event: RowEvent) -> TransformResult:
        function = self.for_table(event.schema, event.table)
        return event if function is None else function(event)

    def columns(self) -> Sequence[tuple[str, str]]:
        return self.column_list.named()


def partial_mask(keep_first: int, keep_last: int, char: str) -> Callable[[Any], str]:
    """A function hiding all but the first ``keep_first`` and last ``keep_last``
    characters of a value's text; a value no longer than both together is hidden whole."""
    def mask(value: Any) -> str:
        text = value if isinstance(value, str) else str(value)
        hidden = len(text) - keep_first - keep_last
        if hidden <= 0:
            return char * len(text)
        return text[:keep_first] + char * hidden + (text[len(text) - keep_last:])
    return mask
