"""The JSON API's bodies: validated on the way in, described in the OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec


class SnapshotRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /pipelines/{name}/snapshots``: tables to snapshot (``schema.table``); empty
    or absent: every table the pipeline follows."""

    tables: list[str] = []


class ReplayRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /pipelines/{name}/dead-letters``: the letters (``index`` from the listing) to
    replay; absent: every letter not replayed yet."""

    indexes: list[int] | None = None


class SnapshotJob(msgspec.Struct):
    table: str
    state: str  # running | queued | done | refused
    rows: int
    estimate: int | None
    progress: float | None  # 0..1 when the estimate is known
    eta_seconds: float | None
    text: str


class PipelineStatus(msgspec.Struct):
    name: str
    state: str
    paused: bool
    position: Any
    checkpoint: Any
    lag_seconds: float | None
    max_lag: float | None
    events_total: int
    events_per_second_1m: float
    events_per_second_5m: float
    batches: int
    last_error: str | None
    last_error_at: str | None
    restarts: int
    next_restart_in: float | None
    dead_letters: int  # in the store, not replayed yet
    dead_letters_since_start: int
    snapshots: list[SnapshotJob]
    #: the source's own problems (a PostgreSQL slot over ``max_retained_wal``)
    source_problems: list[str]


class PipelineList(msgspec.Struct):
    pipelines: list[PipelineStatus]


class Problem(msgspec.Struct, omit_defaults=True):
    """An error: ``error`` says what and how to fix; ``field`` names the body field."""

    error: str
    field: str | None = None


class Readiness(msgspec.Struct):
    ready: bool
    #: pipeline name -> why it is not ready
    not_ready: dict[str, str]


class Accepted(msgspec.Struct):
    pipeline: str
    state: str


class SnapshotAccepted(msgspec.Struct):
    pipeline: str
    id: str
    tables: list[str]


class DeadLetters(msgspec.Struct):
    pipeline: str
    total: int
    pending: int
    letters: list[dict[str, Any]]


class ReplayResponse(msgspec.Struct):
    pipeline: str
    replayed: list[int]
    failed: dict[str, str]


class ReloadResponse(msgspec.Struct):
    started: list[str]
    stopped: list[str]
    restarted: list[str]
    unchanged: list[str]
