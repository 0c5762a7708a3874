"""``redis://`` checkpoint and dead-letter stores.

``checkpoint = "redis://host:6379/0"`` keeps the checkpoint under ``meepo:checkpoint:<pipeline>``
(override with ``?key=...``), so a runner can move between machines; snapshot requests wait in
the hash ``<key>:requests``. ``dead_letter = "redis://host:6379/0"`` appends records to the list
``meepo:dead:<pipeline>``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any, cast

import redis

from meepo_core import (
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    DeadLetterStore,
    MeepoError,
    RowEvent,
    dead_letter_record,
    decode_checkpoint,
    describe_error,
    encode_checkpoint,
)

from .connection import check_url, connect, pop_query, redact

CHECKPOINT_KEY = "meepo:checkpoint:{pipeline}"
DEAD_LETTER_KEY = "meepo:dead:{pipeline}"


def _split(url: str, default_key: str, pipeline: str) -> tuple[str, str]:
    rest, key = pop_query(url, "key")
    check_url(rest)
    return rest, (key or default_key).format(pipeline=pipeline)


class RedisCheckpointStore(CheckpointStore):
    """One JSON value per pipeline, written with a single ``SET`` (atomic: a reader sees the
    old or the new position, never a torn one). Durability is Redis' own: run the server
    with ``appendonly yes`` (and ``appendfsync always`` for no loss at all); after a Redis
    data loss the pipeline restarts from an older position, which replays (at-least-once)."""

    def __init__(self, url: str, pipeline: str, key: str | None = None) -> None:
        self.url = url
        self.pipeline = pipeline
        self.key = key or CHECKPOINT_KEY.format(pipeline=pipeline)
        self.description = f"{redact(url)} key {self.key}"
        self._client: redis.Redis | None = None

    @classmethod
    def from_url(
        cls, url: str, pipeline: str, base_dir: Path | None = None
    ) -> RedisCheckpointStore:
        """The factory registered for ``redis``/``rediss``/``unix`` (``ValueError`` if bad)."""
        rest, key = _split(url, CHECKPOINT_KEY, pipeline)
        return cls(rest, pipeline, key)

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = connect(self.url)
        return self._client

    def load(self) -> Checkpoint | None:
        try:
            raw = cast(bytes | None, self.client.get(self.key))
        except redis.RedisError as exc:
            raise CheckpointError(
                f"cannot read checkpoint {self.description}: {describe_error(exc)}"
            ) from exc
        if raw is None:
            return None
        return decode_checkpoint(
            raw, self.description,
            "restore it, or DEL the key to restart from the source's configured start",
        )

    def save(self, checkpoint: Checkpoint) -> None:
        try:
            self.client.set(self.key, encode_checkpoint(self.pipeline, checkpoint))
        except redis.RedisError as exc:
            raise CheckpointError(
                f"cannot write checkpoint {self.description}: {describe_error(exc)}"
            ) from exc

    @property
    def requests_key(self) -> str:
        return f"{self.key}:requests"

    def add_request(self, request: dict[str, Any]) -> None:
        try:
            self.client.hset(self.requests_key, request["id"], json.dumps(request))
        except redis.RedisError as exc:
            raise CheckpointError(
                f"cannot write the snapshot request to {self.description}: {describe_error(exc)}"
            ) from exc

    def requests(self) -> list[dict[str, Any]]:
        try:
            raw = cast(dict[bytes, bytes], self.client.hgetall(self.requests_key))
        except redis.RedisError as exc:
            raise CheckpointError(
                f"cannot read snapshot requests from {self.description}: {describe_error(exc)}"
            ) from exc
        return [json.loads(raw[key]) for key in sorted(raw)]

    def remove_requests(self, ids: Collection[str]) -> None:
        if ids:
            try:
                self.client.hdel(self.requests_key, *ids)
            except redis.RedisError as exc:
                raise CheckpointError(
                    f"cannot remove snapshot requests from {self.description}: "
                    f"{describe_error(exc)}") from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class RedisDeadLetterStore(DeadLetterStore):
    """A Redis list of :func:`~meepo_core.dead_letters.dead_letter_record` JSON strings,
    oldest first. ``record`` buffers; ``sync`` (called before every checkpoint) pushes the
    buffer with one ``RPUSH``, so a letter is in Redis before the position that passed it
    is saved. Read them with ``LRANGE meepo:dead:<pipeline> 0 -1``."""

    def __init__(self, url: str, pipeline: str, key: str | None = None) -> None:
        self.url = url
        self.key = key or DEAD_LETTER_KEY.format(pipeline=pipeline)
        self.description = f"{redact(url)} list {self.key}"
        self._buffer: list[str] = []
        self._client: redis.Redis | None = None

    @classmethod
    def from_url(
        cls, url: str, pipeline: str, base_dir: Path | None = None
    ) -> RedisDeadLetterStore:
        rest, key = _split(url, DEAD_LETTER_KEY, pipeline)
        return cls(rest, pipeline, key)

    def record(self, event: RowEvent, sink: str, error: str) -> None:
        record: dict[str, Any] = dead_letter_record(event, sink, error)
        self._buffer.append(json.dumps(record, ensure_ascii=False))

    def sync(self) -> None:
        if not self._buffer:
            return
        if self._client is None:
            self._client = connect(self.url)
        try:
            self._client.rpush(self.key, *self._buffer)
        except redis.RedisError as exc:
            raise MeepoError(
                f"cannot write {len(self._buffer)} dead letters to {self.description}: "
                f"{describe_error(exc)}; the checkpoint was not advanced, rerun to retry"
            ) from exc
        self._buffer.clear()

    def close(self) -> None:
        try:
            self.sync()
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None
