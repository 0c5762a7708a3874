"""Checkpoint stores: where a pipeline remembers the position to resume from."""

from __future__ import annotations

import abc
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from .errors import CheckpointError
from .events import Position


def encode_checkpoint(pipeline: str, position: Position) -> str:
    """A checkpoint as stores keep it: JSON with the pipeline, the position and the UTC time
    it was saved."""
    record = {"pipeline": pipeline, "position": position,
              "saved_at": datetime.now(UTC).isoformat()}
    return json.dumps(record, separators=(",", ":"))


def decode_checkpoint(stored: str | bytes, where: str, fix: str) -> Position:
    """The position in an :func:`encode_checkpoint` record. Raises :class:`CheckpointError`
    naming ``where`` and ``fix`` when the record is corrupt."""
    try:
        return json.loads(stored)["position"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {where} is corrupt ({type(exc).__name__}); {fix}"
        ) from exc


class CheckpointStore(abc.ABC):
    """Keeps one pipeline's last fully applied position.

    ``save`` is atomic: after a crash at any point, ``load`` returns either the previous
    or the new position, never a torn one.
    """

    #: How the store is shown in logs and ``meepo list``.
    description: str = ""

    @abc.abstractmethod
    def load(self) -> Position | None:
        """The saved position, or ``None`` when the pipeline never checkpointed."""

    @abc.abstractmethod
    def save(self, position: Position) -> None:
        """Persist ``position`` durably and atomically."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class FileCheckpointStore(CheckpointStore):
    """A JSON file, replaced atomically (temp file, fsync, rename, fsync of the directory)."""

    def __init__(self, path: Path, pipeline: str) -> None:
        self.path = path
        self.pipeline = pipeline
        self.description = f"file:{path}"

    def load(self) -> Position | None:
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

    def save(self, position: Position) -> None:
        record = encode_checkpoint(self.pipeline, position)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(record)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoint {self.path}: {exc}") from exc


class MemoryCheckpointStore(CheckpointStore):
    """Forgets everything at exit: ``checkpoint = "none"``, for demos and replays."""

    description = "none (not persisted)"

    def __init__(self) -> None:
        self.position: Position | None = None

    def load(self) -> Position | None:
        return self.position

    def save(self, position: Position) -> None:
        self.position = position
