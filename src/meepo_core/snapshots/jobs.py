"""What a snapshot copies: the tables a source can snapshot and the jobs (one table of one
request each) with their progress, as the checkpoint keeps them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..events import qualified_name
from ..serialization import decode_value, encode_value


@dataclass(frozen=True)
class SnapshotTable:
    """A table a source can snapshot: ``key`` are its primary-key columns in key order."""

    schema: str
    table: str
    key: tuple[str, ...]
    estimated_rows: int | None = None

    @property
    def qualified(self) -> str:
        return qualified_name(self.schema, self.table)


@dataclass
class SnapshotJob:
    """One table of one snapshot request, with its progress."""

    request: str
    table: SnapshotTable
    #: Only rows whose columns equal these values (``None``: IS NULL); all rows when empty.
    where: dict[str, Any] = field(default_factory=dict)
    after: tuple[Any, ...] | None = None
    #: The table's last key when the job started: the copy ends there (None: not read yet).
    until: tuple[Any, ...] | None = None
    rows: int = 0
    chunks: int = 0
    started_at: str | None = None
    requested_at: str = field(default_factory=lambda: _now())
    #: The first table of its request: its first row is the snapshot's first (Debezium's
    #: ``first``), see :class:`~meepo_core.events.SnapshotPlace`.
    first: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "table": self.table.qualified,
            "schema": self.table.schema,
            "name": self.table.table,
            "key": list(self.table.key),
            "estimate": self.table.estimated_rows,
            "where": encode_value(self.where),
            "after": encode_value(list(self.after)) if self.after is not None else None,
            "until": encode_value(list(self.until)) if self.until is not None else None,
            "rows": self.rows,
            "chunks": self.chunks,
            "started_at": self.started_at,
            "requested_at": self.requested_at,
            "first": self.first,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotJob:
        table = SnapshotTable(data["schema"], data["name"], tuple(data["key"]), data["estimate"])
        after, until = data.get("after"), data.get("until")
        return cls(
            request=data["request"], table=table, where=decode_value(data.get("where") or {}),
            after=tuple(decode_value(after)) if after is not None else None,
            until=tuple(decode_value(until)) if until is not None else None,
            rows=data.get("rows", 0), chunks=data.get("chunks", 0),
            started_at=data.get("started_at"), requested_at=data.get("requested_at") or _now(),
            first=bool(data.get("first")),
        )


def new_request_id(kind: str = "request") -> str:
    """A request id that sorts by time: ``20261126T101500Z-request-1a2b3c``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{kind}-{secrets.token_hex(3)}"


def is_initial(request: str) -> bool:
    """Whether ``request`` is a pipeline's initial snapshot (``new_request_id("initial")``)."""
    return request.split("-")[1:2] == ["initial"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
