"""A third-party transform written from the README's "A transform" section alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meepo_core import Options, RowEvent, Transform, derive, hookimpl


class StampTransform(Transform):
    """{ type = "stamp", column = "_source", value = "meepo" }: adds a column to `after`."""

    def __init__(self, column: str, value: str) -> None:
        self.column, self.value = column, value

    @classmethod
    def from_options(cls, options: Options) -> StampTransform:
        column = options.string("column")
        value = options.string("value", "meepo")
        options.done()
        return cls(column, value)

    def apply(self, event: RowEvent) -> RowEvent | list[RowEvent] | None:
        if event.after is None:
            return event
        return derive(event, after={**event.after, self.column: self.value})


@hookimpl
def meepo_register_transforms(register: Callable[[str, Any], None]) -> None:
    register("stamp", StampTransform)


def split_by_half(event: RowEvent) -> RowEvent | list[RowEvent] | None:
    """For ``type = "python"``: an event of an even id goes out twice (to ``items`` and
    to ``items_copy``), an odd one once, id 3 never; id 13 raises."""
    if event.pk == 13:
        raise ValueError("thirteen is unlucky")
    if event.pk == 3:
        return None
    if event.pk % 2 == 0:
        return [event, derive(event, table=f"{event.table}_copy")]
    return event
