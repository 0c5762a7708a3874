"""Fields the source did not send: completing documents from the stored ones.

An update may leave a column :data:`~meepo_core.UNCHANGED` (PostgreSQL does not send an
unchanged TOAST value). Its ``index`` operation then carries the other fields and names the
missing ones in ``Operation.unchanged``. Elasticsearch's partial ``update`` cannot carry an
external version, so instead the missing fields are copied from the document as it stands
before the event, and the whole document is indexed with the event's external version as
usual: a replayed or older event still never regresses a document.

"As it stands before the event" is the latest earlier operation of the same batch on that
document when there is one (operations are only sent at the end of the batch), else the
stored document, read with one real-time ``mget`` for the whole batch. An event whose
document is in neither (never copied, or deleted) cannot be completed without inventing
values: it is returned as failed, for the dead-letter store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .documents import Operation

#: (index, document id) of a document.
DocKey = tuple[str, str]
#: Reads stored documents: {key: fields wanted} -> {key: source (those fields) or None}.
Fetch = Callable[[dict[DocKey, set[str]]], dict[DocKey, dict[str, Any] | None]]


def fill_unchanged(
    operations: Sequence[Operation], fetch: Fetch
) -> tuple[list[Operation], list[tuple[Operation, str]]]:
    """``operations`` with every ``unchanged`` field filled in, and the operations of
    events whose document cannot be found, with the reason (all of an event's operations
    are then left out, so a key change does not delete the old document either)."""
    if not any(op.unchanged for op in operations):
        return list(operations), []
    wanted: dict[DocKey, set[str]] = {}
    in_batch: set[DocKey] = set()
    for group in _by_event(operations):
        for op in group:
            key = (op.index, op.fill_from or op.doc_id)
            if op.unchanged and key not in in_batch:
                wanted.setdefault(key, set()).update(op.unchanged)
        in_batch.update((op.index, op.doc_id) for op in group)
    stored = fetch(wanted) if wanted else {}
    current: dict[DocKey, dict[str, Any] | None] = {}
    ready: list[Operation] = []
    failed: list[tuple[Operation, str]] = []
    for group in _by_event(operations):
        filled: list[Operation] = []
        for op in group:
            if not op.unchanged:
                filled.append(op)
                continue
            key = (op.index, op.fill_from or op.doc_id)
            document = current[key] if key in current else stored.get(key)
            if document is None:
                failed.append((op, _missing(op)))
                break
            kept = {field: document[field] for field in op.unchanged if field in document}
            filled.append(dataclasses.replace(op, source={**kept, **(op.source or {})},
                                              unchanged=(), fill_from=None))
        else:
            for op in filled:
                current[(op.index, op.doc_id)] = op.source if op.action == "index" else None
            ready += filled
    return ready, failed


def _by_event(operations: Sequence[Operation]) -> Iterator[list[Operation]]:
    """Consecutive operations of one event (a key change is a delete and an index)."""
    group: list[Operation] = []
    for op in operations:
        if group and op.event is not group[0].event:
            yield group
            group = []
        group.append(op)
    if group:
        yield group


def _missing(op: Operation) -> str:
    where = f"{op.index}/{op.fill_from or op.doc_id}"
    return (f"document {where} is not in the index, and the event lacks the value of "
            f"{', '.join(op.unchanged)} (unchanged, not sent by the source); backfill the table, "
            "or make the source send whole rows (PostgreSQL: REPLICA IDENTITY FULL)")
