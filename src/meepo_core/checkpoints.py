"""Checkpoint stores: where a pipeline remembers the position to resume from, the progress
of its snapshots, and the snapshot requests waiting for it."""

from __future__ import annotations

import abc
import json
import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import CheckpointError, ConfigError
from .events import Position
from .writable import why_not_writable


@dataclass(frozen=True)
class Checkpoint:
    """What a pipeline saves once every sink applied everything up to ``position``:
    the source position to resume from, and ``snapshot``, the progress of its snapshots
    (JSON data owned by :mod:`meepo_core.snapshots`; None when it never snapshotted).
    ``pipeline`` is read back from the record; stores write their own pipeline's name."""

    position: Position
    snapshot: dict[str, Any] | None = None
    #: The pipeline that saved it, as its record says (None when the record does not say).
    pipeline: str | None = field(default=None, compare=False)
    #: When it was saved (ISO 8601, UTC), as its record says: when a run was last seen.
    saved_at: str | None = field(default=None, compare=False)


def encode_checkpoint(pipeline: str, checkpoint: Checkpoint) -> str:
    """A checkpoint as stores keep it: JSON with the pipeline, the position, the snapshot
    progress (when any) and the UTC time it was saved."""
    record: dict[str, Any] = {"pipeline": pipeline, "position": checkpoint.position}
    if checkpoint.snapshot is not None:
        record["snapshot"] = checkpoint.snapshot
    record["saved_at"] = datetime.now(UTC).isoformat()
    return json.dumps(record, separators=(",", ":"))


def decode_checkpoint(stored: str | bytes, where: str, fix: str) -> Checkpoint:
    """The checkpoint in an :func:`encode_checkpoint` record. Raises
    :class:`CheckpointError` naming ``where`` and ``fix`` when the record is corrupt."""
    try:
        record = json.loads(stored)
        snapshot = record.get("snapshot")
        if snapshot is not None and not isinstance(snapshot, dict):
            raise TypeError("snapshot is not an object")
        owner, saved_at = record.get("pipeline"), record.get("saved_at")
        return Checkpoint(record["position"], snapshot,
                          owner if isinstance(owner, str) else None,
                          saved_at if isinstance(saved_at, str) else None)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"checkpoint {where} is corrupt ({type(exc).__name__}); {fix}"
        ) from exc


def refuse_foreign_checkpoint(
    checkpoint: Checkpoint | None, pipeline: str, where: str, key_path: str
) -> None:
    """Raise :class:`ConfigError` at ``key_path`` when ``checkpoint`` was saved by another
    pipeline than ``pipeline``: resuming from it would skip or replay that pipeline's
    changes (two pipelines sharing one file, a copied config). A rename is the legitimate
    case; ``meepo adopt-checkpoint NAME`` takes the checkpoint over explicitly."""
    if checkpoint is None or checkpoint.pipeline in (None, pipeline):
        return
    raise ConfigError(
        key_path,
        f"checkpoint {where} was saved by pipeline {checkpoint.pipeline!r}, not {pipeline!r}; "
        f"give {pipeline!r} a checkpoint of its own, or, if {checkpoint.pipeline!r} was "
        f"renamed to {pipeline!r}, take it over with `meepo adopt-checkpoint {pipeline}`",
    )


class CheckpointStore(abc.ABC):
    """Keeps one pipeline's last fully applied :class:`Checkpoint`, and the snapshot requests
    (``meepo snapshot NAME``) waiting for the pipeline to take them.

    ``save`` is atomic: after a crash at any point, ``load`` returns either the previous
    or the new checkpoint, never a torn one. Requests are JSON objects with an ``id``;
    ``add_request`` must be safe while a runner reads and removes others.
    """

    #: How the store is shown in logs and ``meepo list``.
    description: str = ""
    #: Whether what is saved (checkpoint, requests) outlives the process, so that a later
    #: run, or another process (``meepo snapshot NAME``), sees it.
    persistent: bool = True

    @abc.abstractmethod
    def load(self) -> Checkpoint | None:
        """The saved checkpoint, or ``None`` when the pipeline never checkpointed."""

    @abc.abstractmethod
    def save(self, checkpoint: Checkpoint) -> None:
        """Persist ``checkpoint`` durably and atomically."""

    def check(self) -> list[str]:
        """For ``meepo check``: one line per reason ``save`` would fail (without writing
        anything), each ending with the fix; empty when ready."""
        return []

    def add_request(self, request: dict[str, Any]) -> None:
        """Keep a snapshot request until a runner takes it (see :meth:`requests`)."""
        raise CheckpointError(
            f"the checkpoint store {self.description} cannot keep snapshot requests; use a "
            "file: or redis:// checkpoint"
        )

    def requests(self) -> list[dict[str, Any]]:
        """The snapshot requests not yet removed, oldest first."""
        return []

    def remove_requests(self, ids: Collection[str]) -> None:  # noqa: B027 - optional hook
        """Forget the requests with these ids (the runner took them into a checkpoint)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: temp file, fsync, rename, fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileCheckpointStore(CheckpointStore):
    """A JSON file, replaced atomically (temp file, fsync, rename, fsync of the directory).
    Snapshot requests are files in the directory ``PATH.requests/``, one per request."""

    def __init__(self, path: Path, pipeline: str) -> None:
        self.path = path
        self.pipeline = pipeline
        self.description = f"file:{path}"
        self.requests_dir = path.with_name(path.name + ".requests")

    def load(self) -> Checkpoint | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {exc.strerror}") from exc
        return decode_checkpoint(
            text, str(self.path),
            "restore it from a backup, or delete it to restart from the source's configured start",
        )

    def check(self) -> list[str]:
        # save() writes a temporary file next to the checkpoint, then renames it
        problem = why_not_writable(self.path) or why_not_writable(
            self.path.with_name(f".{self.path.name}.tmp"))
        return [f"{problem}; change checkpoint"] if problem else []

    def save(self, checkpoint: Checkpoint) -> None:
        try:
            write_atomically(self.path, encode_checkpoint(self.pipeline, checkpoint))
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoint {self.path}: {exc}") from exc

    def add_request(self, request: dict[str, Any]) -> None:
        try:
            write_atomically(self.requests_dir / f"{request['id']}.json", json.dumps(request))
        except OSError as exc:
            raise CheckpointError(
                f"cannot write the snapshot request to {self.requests_dir}: {exc}") from exc

    def requests(self) -> list[dict[str, Any]]:
        found = []
        try:
            names = sorted(p for p in self.requests_dir.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            return []
        for path in names:
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue  # removed meanwhile, or not ours
        return found

    def remove_requests(self, ids: Collection[str]) -> None:
        for request_id in ids:
            (self.requests_dir / f"{request_id}.json").unlink(missing_ok=True)


class MemoryCheckpointStore(CheckpointStore):
    """Forgets everything at exit: ``checkpoint = "none"``, for demos, replays and side
    runs that must not move the pipeline's own checkpoint."""

    description = "none (not persisted)"
    persistent = False

    def __init__(self) -> None:
        self.checkpoint: Checkpoint | None = None
        self._requests: dict[str, dict[str, Any]] = {}

    def load(self) -> Checkpoint | None:
        return self.checkpoint

    def save(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint

    def add_request(self, request: dict[str, Any]) -> None:
        self._requests[request["id"]] = request

    def requests(self) -> list[dict[str, Any]]:
        return list(self._requests.values())

    def remove_requests(self, ids: Collection[str]) -> None:
        for request_id in ids:
            self._requests.pop(request_id, None)
