"""Sending operations with the bulk API: sizing, item classification, and what is left to
resend.

Each item of a bulk response is one of:

* **applied** -- 200/201; a ``delete`` answered 404 ``not_found`` (already gone); or, with
  external versioning, a 409 version conflict: the index already holds this or a newer
  version, which is exactly what a replay should leave alone;
* **pending** -- 429 (rejected, queue full) and 5xx: not applied yet, to be resent;
* **failed** -- any other per-document error (a mapping error, say): reported back so the
  sink dead-letters the event;
* **fatal** -- errors that are about the cluster or config rather than the document
  (missing index, read-only block, bad index name, no permission): raised as
  :class:`~meepo_core.errors.SinkError`, so nothing is dead-lettered wrongly.

A whole-request 429/5xx, a connection error or a timeout leaves the whole request pending.
The sender never waits or retries by itself: it returns the pending operations (those of the
first request that left any, and every later one, in order) and the sink hands the batch
back to the delivery engine, whose one retry policy (the pipeline's ``max_retries`` and
``retry_backoff``) decides when the sink resends them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from meepo_core import SinkError

from .documents import Operation

#: Per-item error types that say the cluster or config is wrong, not the document.
FATAL_ERROR_TYPES = frozenset({
    "index_not_found_exception",
    "invalid_index_name_exception",
    "cluster_block_exception",
    "index_closed_exception",
    "security_exception",
    "illegal_state_exception",
})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass
class BulkResult:
    """What happened to a list of operations."""

    applied: int = 0
    stale: int = 0  # version conflicts: the index already had this or a newer version
    failed: list[tuple[Operation, str]] = field(default_factory=list)
    #: Operations not applied yet (throttled, 5xx, unreachable), in their original order.
    pending: list[Operation] = field(default_factory=list)
    #: Why the first of them was not applied (one line), when there are any.
    reason: str = ""


def encode(op: Operation) -> list[bytes]:
    """The NDJSON lines of one operation."""
    meta: dict[str, Any] = {"_index": op.index, "_id": op.doc_id}
    if op.version is not None:
        meta["version"] = op.version
        meta["version_type"] = "external"
    lines = [_ENCODER.encode({op.action: meta}).encode()]
    if op.action == "index":
        lines.append(_ENCODER.encode(op.source).encode())
    return lines


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def chunks(
    encoded: Sequence[tuple[Operation, list[bytes]]], max_actions: int, max_bytes: int
) -> Iterator[list[tuple[Operation, list[bytes]]]]:
    """Split operations into requests of at most ``max_actions`` and about ``max_bytes``
    (a single larger operation goes alone)."""
    chunk: list[tuple[Operation, list[bytes]]] = []
    size = 0
    for item in encoded:
        item_size = sum(len(line) + 1 for line in item[1])
        if chunk and (len(chunk) >= max_actions or size + item_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


class BulkSender:
    """Sends operations once and returns what was applied, what failed per document and what
    is pending; raises only for failures that are about the cluster (missing index, auth...).
    """

    def __init__(
        self,
        client: Elasticsearch,
        *,
        label: str,
        versioning: bool,
        max_actions: int,
        max_bytes: int,
        refresh: str = "false",
        unreachable: str = "cannot reach the cluster",
    ) -> None:
        self.client = client
        self.label = label
        self.versioning = versioning
        self.max_actions = max_actions
        self.max_bytes = max_bytes
        self.refresh = refresh
        self.unreachable = unreachable

    def send(self, operations: Sequence[Operation]) -> BulkResult:
        """Send ``operations`` in requests of at most ``max_actions``/``max_bytes``. After
        the first request that leaves operations pending no further request is sent (its
        operations join the pending ones, so that order is kept on every document)."""
        result = BulkResult()
        encoded = []
        for op in operations:
            try:
                encoded.append((op, encode(op)))
            except RecursionError as exc:  # nested deeper than the JSON encoder goes
                result.failed.append((op, f"cannot encode as JSON: {exc}"))
        sent = 0
        for chunk in chunks(encoded, self.max_actions, self.max_bytes):
            sent += len(chunk)
            self._send_chunk(chunk, result)
            if result.pending:
                result.pending += [op for op, _ in encoded[sent:]]
                break
        return result

    def _send_chunk(self, chunk: list[tuple[Operation, list[bytes]]], result: BulkResult) -> None:
        try:
            body = [line for _, lines in chunk for line in lines]
            # Pre-encoded NDJSON lines: the client's serializer passes bytes through.
            extra: dict[str, Any] = {} if self.refresh == "false" else {"refresh": self.refresh}
            response = self.client.bulk(operations=body, **extra)  # type: ignore[arg-type]
        except ApiError as exc:
            if exc.meta.status not in RETRY_STATUSES:
                raise SinkError(
                    f"bulk request rejected with HTTP {exc.meta.status}: {_api_error(exc)}"
                    f"{_auth_hint(exc.meta.status)}",
                    retryable=False,
                ) from exc
            self._leave_pending(chunk, result, f"HTTP {exc.meta.status}: {_api_error(exc)}")
            return
        except TransportConnectionError as exc:
            self._leave_pending(chunk, result, f"{self.unreachable} ({type(exc).__name__}: {exc})")
            return
        except TransportError as exc:
            self._leave_pending(chunk, result, f"{type(exc).__name__}: {exc}")
            return
        pending_docs: set[tuple[str, str]] = set()
        for (op, _), item in zip(chunk, response.body["items"], strict=True):
            verdict = self._classify(op, item, result)
            doc = (op.index, op.doc_id)
            # Without versions a resent operation must not overtake a later one on the same
            # document, so those are resent too, in order.
            if verdict is not None or (not self.versioning and doc in pending_docs):
                result.pending.append(op)
                pending_docs.add(doc)
                result.reason = result.reason or verdict or ""

    @staticmethod
    def _leave_pending(
        chunk: list[tuple[Operation, list[bytes]]], result: BulkResult, reason: str
    ) -> None:
        result.pending += [op for op, _ in chunk]
        result.reason = result.reason or reason

    def _classify(self, op: Operation, item: dict[str, Any], result: BulkResult) -> str | None:
        """Record one item's outcome; returns a reason when it is pending (to be resent)."""
        ((_, outcome),) = item.items()
        status = int(outcome.get("status", 500))
        error = outcome.get("error")
        if 200 <= status < 300:
            result.applied += 1
            return None
        if op.action == "delete" and status == 404 and outcome.get("result") == "not_found":
            result.applied += 1
            return None
        error_type = error.get("type", "") if isinstance(error, dict) else ""
        text = _item_error(error)
        if status == 409 and self.versioning and error_type == "version_conflict_engine_exception":
            result.stale += 1
            return None
        if status in RETRY_STATUSES:
            return f"HTTP {status}: {text}"
        if error_type in FATAL_ERROR_TYPES or status in (401, 403):
            raise SinkError(
                f"index {op.index!r} rejected {op.action} of {op.doc_id!r} with HTTP {status}: "
                f"{text}{_fatal_hint(error_type, status)}",
                retryable=error_type not in ("invalid_index_name_exception",),
            )
        result.failed.append((op, f"HTTP {status}: {text}"))
        return None


def _item_error(error: Any) -> str:
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            text += f" (caused by {cause.get('type', '')}: {cause['reason']})"
        return text
    return str(error)


def _api_error(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return _item_error(body["error"])
    return str(exc.message)


def _auth_hint(status: int) -> str:
    if status == 401:
        return "; check the sink's api_key or username/password"
    if status == 403:
        return "; the credentials lack the privilege: grant index and create_index on the index"
    return ""


def _fatal_hint(error_type: str, status: int) -> str:
    if error_type == "index_not_found_exception":
        return "; create the index, or set create_indices = true on the sink"
    if error_type == "invalid_index_name_exception":
        return "; fix the sink's index template or indices entry"
    if error_type == "cluster_block_exception":
        return "; the index is read-only (disk watermark?): free space, then clear the block"
    return _auth_hint(status)
