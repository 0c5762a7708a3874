"""Decoded rows to :class:`~meepo_core.RowEvent` s, the same way for every action.

A write has only an ``after`` image, a delete only a ``before`` image, an update both;
the key comes from the newest image (``after``, or ``before`` for a delete), or from
``before`` when an update's ``after`` image lacks key columns (``binlog_row_image =
MINIMAL`` leaves unchanged columns out). ``sequence`` is the rows event's offset plus the
row's index (see :func:`meepo_mysql.positions.sequence_base`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from operator import itemgetter
from typing import Any

from meepo_core import PipelineContext, RowEvent, TableDefinition


class RowBuilder:
    """Builds the events of one table definition (``pk``: key column names in key order;
    empty for a table without a primary key, keyed per ``no_pk``; ``definition``: the
    table's column definitions, hung on every event, when known)."""

    def __init__(self, schema: str, table: str, pk: tuple[str, ...], no_pk: str,
                 context: PipelineContext, definition: TableDefinition | None = None) -> None:
        self.definition = definition
        self.schema = schema
        self.table = table
        self.pk_columns = pk or None
        self.context = context
        self._key: Callable[[dict[str, Any]], Any] | None = itemgetter(*pk) if pk else None
        self._skip = not pk and no_pk == "skip"

    def events(
        self, action: str, rows: list[Any], where: dict[str, Any], committed_at: datetime,
        txid: str | None, sequence: int,
    ) -> list[RowEvent]:
        """One event per row; rows of a keyless table are skipped (and counted) or keyed
        by their whole image, per ``no_pk``."""
        if self._skip:
            self.context.metrics.record_failure("source", "no_pk_skipped", len(rows))
            return []
        key = self._key or _whole_row
        schema, table, pk_columns = self.schema, self.table, self.pk_columns
        definition = self.definition
        update, write = action == "update", action == "write"
        events: list[RowEvent] = []
        append, new = events.append, RowEvent.trusted  # actions and times are valid here
        before: dict[str, Any] | None
        after: dict[str, Any] | None
        for row in rows:
            if update:
                before, after = row
                try:
                    pk = key(after)
                except KeyError:  # a MINIMAL after image without the (unchanged) key
                    pk = key(before)
            elif write:
                before, after = None, row
                pk = key(row)
            else:
                before, after = row, None
                pk = key(row)
            append(new(schema, table, action, pk, before, after, where,  # type: ignore[arg-type]
                       committed_at, txid, sequence, pk_columns, None, definition))
            sequence += 1
        return events


def _whole_row(image: dict[str, Any]) -> tuple[Any, ...]:
    """``no_pk = "row"``: the whole visible image, in column order, is the key."""
    return tuple(image.values())
