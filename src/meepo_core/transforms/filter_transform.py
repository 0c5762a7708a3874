"""``filter``: keep the events for which a CEL expression is true."""

from __future__ import annotations

from typing import Self

from ..events import RowEvent
from ..options import Options
from .base import EventFunction, Transform, TransformResult
from .expressions import Expression


def _drop(event: RowEvent) -> None:
    return None


class FilterTransform(Transform):
    """``{ type = "filter", where = "row.tenant != 'test' && table != 'audit_tmp'" }``:
    events for which ``where`` is false are dropped (and counted as delivered: the
    checkpoint moves past them). The expression language is CEL, see
    :mod:`meepo_core.transforms.expressions` for the variables. An expression that reads only
    ``schema``, ``table`` and ``action`` is evaluated once per table and action, not per
    event; one that gives something other than true or false on an event is an error for
    that event (dead letter)."""

    def __init__(self, where: Expression) -> None:
        self.where = where

    @classmethod
    def from_options(cls, options: Options) -> Self:
        where = Expression(options.string("where"), options.key_path("where"))
        where.check(bool, "true or false")
        options.done()
        return cls(where)

    def for_table(self, schema: str, table: str) -> EventFunction | None:
        where = self.where
        if where.variables <= {"schema", "table"}:
            return None if where.evaluate_table(schema, table, "write") else _drop
        if where.table_level:
            keep = {action: bool(where.evaluate_table(schema, table, action))
                    for action in ("write", "update", "delete", "read")}
            return lambda event: event if keep[event.action] else None
        program, context = where.program, where.context

        def keep_where(event: RowEvent) -> TransformResult:
            result = program.execute(context(event))
            if result is True:
                return event
            if result is False:
                return None
            raise TypeError(f"{where.text!r} gave {result!r}, not true or false")
        return keep_where

    def apply(self, event: RowEvent) -> TransformResult:
        function = self.for_table(event.schema, event.table)
        return event if function is None else function(event)
