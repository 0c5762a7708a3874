"""``filter``: keep the events for which a CEL expression is true."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Self

from ..events import UNCHANGED, RowEvent
from ..options import REQUIRED, Options, OptionSpec
from .base import EventFunction, Transform, TransformResult
from .expressions import IMAGES, Expression


def _drop(event: RowEvent) -> None:
    return None


#: A filter over one column remembers its result per (action, value) of the column, up to
#: this many values; when fewer than half of its lookups hit after that many (an id, a
#: timestamp), it stops remembering for that table.
MEMO_SIZE = 4096


def _memoized(evaluate: Callable[[RowEvent], bool], image: str,
              column: str) -> EventFunction:
    """``evaluate`` per event, remembered per action and value of ``image.column``: a CEL
    evaluation costs about twenty dictionary lookups, and filters over a tenant, a status
    or a flag see few distinct values. Evaluation is pure, so a remembered result is the
    one CEL would give (values are told apart by type too: ``1``, ``1.0`` and ``True``)."""
    read = IMAGES[image]
    memo: dict[tuple[str, type, Any], bool] = {}
    counts = [0, 0]  # lookups, hits

    def keep(event: RowEvent) -> TransformResult:
        if counts[0] >= MEMO_SIZE:
            if counts[1] * 2 < counts[0]:
                return event if evaluate(event) else None
            counts[0] = counts[1] = 0
            memo.clear()
        found = read(event)
        value = found.get(column, UNCHANGED) if found else UNCHANGED
        key = (event.action, value.__class__, value)
        counts[0] += 1
        try:
            result = memo.get(key)
        except TypeError:  # an unhashable value (a JSON column's dict)
            return event if evaluate(event) else None
        if result is None:
            result = memo[key] = evaluate(event)
        else:
            counts[1] += 1
        return event if result else None
    return keep


WHERE = OptionSpec(
    "where", "string", REQUIRED,
    "A CEL expression: the events for which it is true are kept, the others dropped (see "
    "*Expressions*).")


class FilterTransform(Transform):
    """``{ type = "filter", where = "row.tenant != 'test' && table != 'audit_tmp'" }``:
    events for which ``where`` is false are dropped (and counted as delivered: the
    checkpoint moves past them). The expression language is CEL, see
    :mod:`meepo_core.transforms.expressions` for the variables. An expression that reads only
    ``schema``, ``table`` and ``action`` is evaluated once per table and action, not per
    event; one that gives something other than true or false on an event is an error for
    that event (dead letter)."""

    OPTIONS = (WHERE,)

    def __init__(self, where: Expression) -> None:
        self.where = where

    @classmethod
    def from_options(cls, options: Options) -> Self:
        where = Expression(options.string(WHERE), options.key_path("where"))
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
        execute = where.execute

        def evaluate(event: RowEvent) -> bool:
            result = execute(event)
            if result is True or result is False:
                return result
            raise TypeError(f"{where.text!r} gave {result!r}, not true or false")
        if where.single_column is not None:
            return _memoized(evaluate, *where.single_column)
        return lambda event: event if evaluate(event) else None

    def columns(self) -> Sequence[tuple[str, str, str]]:
        return [("where", "*", column) for column in self.where.named_columns()]

    def apply(self, event: RowEvent) -> TransformResult:
        function = self.for_table(event.schema, event.table)
        return event if function is None else function(event)
