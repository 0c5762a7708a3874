"""The ``elasticsearch`` sink: one document per row, kept equal to the table.

Contract (on top of :class:`meepo_core.Sink`'s):

* write, update and snapshot rows (``read``) index the after image as the whole
  document; delete deletes it; an update that changes the pk deletes the old id and
  indexes the new one;
* fields the source did not send (:data:`~meepo_core.UNCHANGED`) keep their stored values:
  they are copied from the document before it is indexed (see :mod:`meepo_es.unchanged`);
* every operation carries ``version = event.sequence`` with ``version_type=external``, so
  a replayed or reordered batch never regresses a document; a version conflict means the
  index is already newer and counts as applied;
* ``apply`` returns only when every operation is applied, or was dead-lettered through
  ``context.dead_letter`` (counted in the metrics); otherwise it raises, so the runner
  never checkpoints past an unrecorded failure;
* retries follow the pipeline's one policy: the sink sends each operation once per
  ``apply``; when some are not applied (429, 5xx, cluster unreachable) it raises a
  retryable :class:`~meepo_core.SinkError` and the delivery engine backs off and calls
  ``apply`` again with the same batch, which then resends only those operations;
* schema changes: a table created, described or altered gets its index (with the
  configured mappings) before its first document, and new columns reach the mapping through
  dynamic mapping with the first document that has them; a ``truncate`` deletes every
  document of the table's index. Documents are whole row images, so a renamed or dropped
  column leaves a document when its row is next written (``meepo es backfill`` rewrites
  them all at once), or, with ``renamed_columns``/``dropped_columns = "rewrite"``, the
  documents already indexed are rewritten when the change comes, before the rows after it
  (see :mod:`meepo_es.field_rewrite`). A retried batch that holds schema changes is sent
  again whole (each run of rows between them is its own request), which external versions
  make harmless.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch
from elasticsearch.helpers import ScanError

from meepo_core import Batch, Options, RowEvent, SchemaChange, Sink, SinkError

from .bulk import BulkSender
from .client import make_client
from .config import OPTIONS, SinkSettings, parse_settings
from .documents import ConversionError, DocumentBuilder, Operation, SequenceError
from .field_rewrite import RewriteError, field_changes, rewrite_documents
from .indices import ensure_index
from .unchanged import DocKey, fill_unchanged

if TYPE_CHECKING:
    from meepo_core import PipelineContext

log = logging.getLogger("meepo.es")


@dataclass
class _Unfinished:
    """A batch whose ``apply`` left operations pending, to resume when it comes again."""

    batch: Batch
    pending: list[Operation]
    #: Events that became no operation, and why (conversion, incomplete unchanged fields).
    failed: list[tuple[RowEvent, str]]
    #: Operations the index refused for good in the attempts so far, and why.
    refused: list[tuple[Operation, str]]


class ElasticsearchSink(Sink):
    """Replicates row events into Elasticsearch indices (see the package README)."""

    follows_schema_changes = True
    OPTIONS = OPTIONS  # declared in .config, where they are read

    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        self.builder = DocumentBuilder(settings)
        self.context: PipelineContext | None = None
        self._client: Elasticsearch | None = None
        self._sender: BulkSender | None = None
        self._ready: set[str] = set()
        self._unfinished: _Unfinished | None = None
        #: Operations skipped because the index already held a newer version.
        self.stale = 0
        self.dead_letters = 0

    @classmethod
    def from_options(cls, options: Options) -> Self:
        return cls(parse_settings(options))

    @property
    def label(self) -> str:
        return self.settings.label

    @property
    def client(self) -> Elasticsearch:
        if self._client is None:
            self._client = make_client(self.settings.client)
        return self._client

    def open(self, context: PipelineContext) -> None:
        self.context = context
        s = self.settings
        self._sender = BulkSender(
            self.client,
            label=s.label,
            versioning=s.versioning,
            max_actions=s.bulk_actions,
            max_bytes=s.bulk_bytes,
            refresh=s.refresh,
            unreachable=s.client.unreachable(),
        )

    def check(self) -> list[str]:
        hosts = ", ".join(self.settings.client.hosts)
        try:
            self.client.info()
        except ApiError as exc:
            hint = {401: "check api_key or username/password",
                    403: "the credentials lack the monitor privilege"}.get(exc.meta.status, "")
            return [f"{hosts} answered HTTP {exc.meta.status} ({exc.message}); {hint}".rstrip("; ")]
        except TransportError as exc:
            return [f"{self.settings.client.unreachable()} ({exc})"]
        return []

    def apply(self, batch: Batch) -> None:
        if batch.schema_changes:
            for part in batch.in_order():
                if isinstance(part, SchemaChange):
                    self._apply_schema_change(part)
                else:
                    self._apply_events(Batch(part))
            return
        self._apply_events(batch)

    def _apply_schema_change(self, change: SchemaChange) -> None:
        assert self.context is not None, "open() first"
        name = self.settings.index_name(change.schema, change.table)
        index = self.builder.redirect.get(name, name)
        if change.kind in ("create", "describe", "alter", "rename"):
            self._ensure_index(index, change)
            if self.settings.rewrite_renamed or self.settings.rewrite_dropped:
                self._rewrite_fields(index, change)
        elif change.kind == "truncate":
            try:
                self.client.delete_by_query(index=index, query={"match_all": {}},
                                            conflicts="proceed", refresh=True)
            except ApiError as exc:
                if exc.meta.status == 404:
                    return  # no index: nothing to empty
                self.context.dead_letter(change, self.label, f"cannot empty index {index!r} "
                                         f"for a TRUNCATE: HTTP {exc.meta.status} {exc.message}"
                                         "; delete its documents by hand")
            except TransportError as exc:
                raise SinkError(f"{self.settings.client.unreachable()} ({exc})") from exc

    def _rewrite_fields(self, index: str, change: SchemaChange) -> None:
        """Rename/remove the fields of renamed/dropped columns in the documents already in
        ``index`` (``renamed_columns``/``dropped_columns = "rewrite"``)."""
        assert self.context is not None, "open() first"
        s = self.settings
        changes = field_changes(change, s.rule(change.schema, change.table),
                                renames=s.rewrite_renamed, drops=s.rewrite_dropped)
        if not changes:
            return
        unsafe = changes.unsafe()
        if unsafe is not None:
            self.context.dead_letter(change, self.label, f"documents of {index!r} not rewritten: "
                                     f"{unsafe} cannot be applied idempotently; they keep the "
                                     "old fields until their rows are written (or run meepo es "
                                     "backfill)")
            self.dead_letters += 1
            return
        try:
            done = rewrite_documents(self.client, index, changes,
                                     before_version=change.sequence, versioning=s.versioning,
                                     chunk_size=s.bulk_actions)
        except ApiError as exc:
            if exc.meta.status == 404:
                return  # no index: no documents to rewrite
            self.context.dead_letter(change, self.label, f"cannot rewrite documents of {index!r}: "
                                     f"HTTP {exc.meta.status} {exc.message}")
            self.dead_letters += 1
            return
        except (RewriteError, ScanError) as exc:
            self.context.dead_letter(change, self.label,
                                     f"cannot rewrite documents of {index!r}: {exc}")
            self.dead_letters += 1
            return
        except TransportError as exc:
            raise SinkError(f"{s.client.unreachable()} ({exc})") from exc
        log.info("%s: %s of %s: %d document(s) rewritten (%s), %d newer left alone",
                 self.label, change.kind, change.qualified_table, done.rewritten,
                 ", ".join([f"{old} -> {new}" for old, new in changes.renamed]
                           + [f"-{field}" for field in changes.dropped]), done.newer)

    def _apply_events(self, batch: Batch) -> None:
        assert self._sender is not None and self.context is not None, "open() first"
        unfinished, self._unfinished = self._unfinished, None
        if unfinished is not None and unfinished.batch is batch:
            # The delivery engine retries the batch: resend only what was not applied.
            operations, failed, refused = unfinished.pending, unfinished.failed, unfinished.refused
        else:
            (operations, failed), refused = self._operations(batch), []
        # Every operation is sent, in order, even several for one document: had only the
        # last been kept, its failure would lose the earlier good state.
        result = self._sender.send(operations)
        self.stale += result.stale
        refused += result.failed
        if result.pending:
            self._unfinished = _Unfinished(batch, result.pending, failed, refused)
            self.context.metrics.record_failure(self.label, "bulk_retry", len(result.pending))
            raise SinkError(
                f"{len(result.pending)} of {len(operations)} bulk operations not applied "
                f"({result.reason}); they are resent when the batch is retried",
                retryable=True,
            )
        seen: set[int] = set()
        for op, error in refused:
            if id(op.event) not in seen:
                seen.add(id(op.event))
                failed.append((op.event, f"{op.action} {op.index}/{op.doc_id}: {error}"))
        for event, error in failed:
            self.context.dead_letter(event, self.label, error)
            self.dead_letters += 1

    def _operations(self, batch: Batch) -> tuple[list[Operation], list[tuple[RowEvent, str]]]:
        """The operations of ``batch``'s events, with the events that cannot become any
        (conversion errors, unchanged fields that cannot be completed) and why."""
        operations: list[Operation] = []
        failed: list[tuple[RowEvent, str]] = []
        for event in batch.events:
            try:
                operations += self.builder.operations(event)
            except SequenceError as exc:
                raise SinkError(f"{self.label}: {exc}", retryable=False) from exc
            except ConversionError as exc:
                failed.append((event, f"conversion: {exc}"))
                continue
            except RecursionError:
                failed.append((event, "conversion: a value nested deeper than Python's stack "
                                      f"allows (about {sys.getrecursionlimit()} levels)"))
                continue
        for index, event in {op.index: op.event for op in operations}.items():
            self._ensure_index(index, event)
        operations, incomplete = fill_unchanged(operations, self._stored)
        failed += [(op.event, error) for op, error in incomplete]
        return operations, failed

    def _stored(self, wanted: dict[DocKey, set[str]]) -> dict[DocKey, dict[str, Any] | None]:
        """The ``wanted`` fields of stored documents (``None``: no such document), read in
        real time with ``mget``."""
        keys = list(wanted)
        found: dict[DocKey, dict[str, Any] | None] = {}
        for start in range(0, len(keys), self.settings.bulk_actions):
            chunk = keys[start:start + self.settings.bulk_actions]
            docs = [{"_index": index, "_id": doc_id, "_source": sorted(wanted[(index, doc_id)])}
                    for index, doc_id in chunk]
            try:
                response = self.client.mget(docs=docs)
            except ApiError as exc:
                raise SinkError(f"{self.label}: cannot read stored documents to complete "
                                f"unchanged fields: HTTP {exc.meta.status} {exc.message}") from exc
            except TransportError as exc:
                raise SinkError(f"{self.settings.client.unreachable()} ({exc})") from exc
            for key, doc in zip(chunk, response.body["docs"], strict=True):
                found[key] = doc.get("_source", {}) if doc.get("found") else None
        return found

    def _ensure_index(self, index: str, event: RowEvent | SchemaChange) -> None:
        if index in self._ready:
            return
        if self.settings.create_indices and index not in self.builder.redirect.values():
            rule = self.settings.rule(event.schema, event.table)
            try:
                if ensure_index(self.client, index, rule):
                    log.info("%s: created index %s", self.label, index)
            except ApiError as exc:
                raise SinkError(f"{self.label}: cannot check or create index {index!r}: {exc}"
                                ) from exc
            except TransportError as exc:
                raise SinkError(f"{self.settings.client.unreachable()} ({exc})") from exc
        self._ready.add(index)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._sender = None
        self._unfinished = None
