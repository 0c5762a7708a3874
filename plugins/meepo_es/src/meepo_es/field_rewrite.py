"""Renamed and dropped columns applied to the documents already in an index
(``renamed_columns = "rewrite"`` / ``dropped_columns = "rewrite"``).

What is rewritten: the documents of the table's index that hold an old field and were
last written before the change (their external version, the sequence of the event that
wrote them, is below the change's ``sequence``). Each gets the old field's value under
its new name, or loses the dropped field; nothing else changes, and it keeps its version.

How, and why not ``_update_by_query``: the documents are read with a scroll (``version``,
``seq_no_primary_term``) and written back whole with a bulk ``index`` at their own version
(``version_type=external_gte``; with ``versioning = "off"``: ``if_seq_no`` /
``if_primary_term``). ``_update_by_query`` would do it in one request, but it writes with
internal versioning: it raises every document's version by one, so a document last
written at sequence ``n`` would refuse the event numbered ``n + 1`` as stale, and it
fails on documents of version 0 (those ``meepo es backfill`` writes). A document written
again between the read and the write-back answers 409 and is left as it is: the newer
write is a whole row image.

Replay (at-least-once): the same change delivered again finds the old fields gone from
the documents written before it, and documents written after it (which may hold a column
re-added under an old name) are newer than the change and left alone. A change whose old
names overlap its new ones (a swap ``a <-> b``, a chain ``a -> b -> c``, a dropped column
whose name another column takes) cannot be applied twice harmlessly, so it is not applied:
the sink dead-letters it (see :func:`FieldChanges.unsafe`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch, helpers

from meepo_core import SchemaChange

from .config import TableRule
from .documents import document_columns


@dataclass(frozen=True)
class FieldChanges:
    """Document fields to rename (old -> new) and to remove, for one schema change."""

    renamed: tuple[tuple[str, str], ...] = ()
    dropped: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.renamed or self.dropped)

    @property
    def old_fields(self) -> tuple[str, ...]:
        """Fields a document must hold for the change to touch it."""
        return tuple(old for old, _ in self.renamed) + self.dropped

    def unsafe(self) -> str | None:
        """Why applying this change twice could alter documents again (a name both left
        and taken), else ``None``."""
        overlap = set(self.old_fields) & {new for _, new in self.renamed}
        if overlap:
            return (f"field(s) {', '.join(sorted(overlap))} both renamed or dropped and "
                    "taken by another column in one change (a swap or chain)")
        return None

    def apply(self, source: dict[str, Any]) -> bool:
        """Rename and remove fields of ``source`` in place; True when it changed."""
        changed = False
        for field in self.dropped:
            if field in source:
                del source[field]
                changed = True
        for old, new in self.renamed:
            if old in source:
                source[new] = source.pop(old)
                changed = True
        return changed


def field_changes(change: SchemaChange, rule: TableRule, *, renames: bool,
                  drops: bool) -> FieldChanges:
    """The document fields ``change`` renames and drops, through the table's
    ``include``/``exclude``/``rename`` rule.

    Renames come from ``renamed_columns`` (the source read them from the statement) and
    need no ``before``: a source that restarted knows the rename but not the definition
    before it. Drops are the columns of ``before`` missing from ``after`` that were not
    renamed, so they need ``before`` (without it nothing is known to have gone). A rename
    the source did not recognise is a drop and an add."""
    if change.after is None:
        return FieldChanges()
    renamed: list[tuple[str, str]] = []
    dropped: list[str] = []
    if renames:
        # By name, not by ``after``: a source that reads definitions late (the mysql
        # source behind the server) may show the column renamed again already.
        for old, new in change.renamed_columns:
            old_field, new_field = _field(rule, old), _field(rule, new)
            if old_field is None:
                continue  # not a field of the documents before: nothing to move
            if new_field is None:  # renamed into a column the rule leaves out
                dropped.append(old_field)
            elif new_field != old_field:
                renamed.append((old_field, new_field))
    if drops and change.before is not None:
        after = {column.name for column in change.after.columns}
        new_fields = {field for c in after if (field := _field(rule, c)) is not None}
        renamed_from = {old for old, _ in change.renamed_columns}
        for column in change.before.columns:
            field = _field(rule, column.name)
            if (column.name not in after and column.name not in renamed_from
                    and field is not None and field not in new_fields):
                dropped.append(field)
    return FieldChanges(tuple(renamed), tuple(dict.fromkeys(dropped)))


def _field(rule: TableRule, column: str) -> str | None:
    """The document field of ``column`` by the rule, ``None`` when it is left out."""
    if not document_columns(rule, {column: None}):
        return None
    return rule.rename.get(column, column)


@dataclass
class RewriteResult:
    rewritten: int = 0
    #: Documents written again since the change (or while being rewritten): left alone.
    newer: int = 0


def rewrite_documents(client: Elasticsearch, index: str, changes: FieldChanges, *,
                      before_version: int | None, versioning: bool,
                      chunk_size: int) -> RewriteResult:
    """Apply ``changes`` to the documents of ``index`` that hold an old field and, when
    ``before_version`` is given, whose version is below it. Refreshes the index first, so
    documents written just before (earlier in the same batch) are found."""
    result = RewriteResult()
    client.indices.refresh(index=index)
    query = {"query": {"bool": {"should": [{"exists": {"field": f}} for f in changes.old_fields],
                                "minimum_should_match": 1}}}
    pending: list[dict[str, Any]] = []
    for hit in _scan(client, index, query, chunk_size):
        if versioning and before_version is not None and hit["_version"] >= before_version:
            result.newer += 1
            continue
        source = hit["_source"]
        if not changes.apply(source):
            continue
        action: dict[str, Any] = {"_op_type": "index", "_index": hit["_index"],
                                  "_id": hit["_id"], "_source": source}
        if versioning:
            action.update(version=hit["_version"], version_type="external_gte")
        else:
            action.update(if_seq_no=hit["_seq_no"], if_primary_term=hit["_primary_term"])
        pending.append(action)
        if len(pending) >= chunk_size:
            _write_back(client, pending, result)
            pending = []
    if pending:
        _write_back(client, pending, result)
    client.indices.refresh(index=index)
    return result


def _scan(client: Elasticsearch, index: str, query: dict[str, Any],
          chunk_size: int) -> Iterator[dict[str, Any]]:
    yield from helpers.scan(client, query=query, index=index, size=chunk_size,
                            version=True, seq_no_primary_term=True)


def _write_back(client: Elasticsearch, actions: list[dict[str, Any]],
                result: RewriteResult) -> None:
    """Bulk-index ``actions``; a 409 is a document written again meanwhile (left alone),
    any other item error raises."""
    for ok, item in helpers.streaming_bulk(client, actions, chunk_size=len(actions),
                                           raise_on_error=False, raise_on_exception=True):
        if ok:
            result.rewritten += 1
            continue
        ((_, outcome),) = item.items()
        if outcome.get("status") == 409:
            result.newer += 1
            continue
        raise RewriteError(f"{outcome.get('_id')!r}: HTTP {outcome.get('status')} "
                           f"{outcome.get('error')}")


class RewriteError(Exception):
    """A document could not be written back (not a version conflict)."""
