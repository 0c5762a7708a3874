"""Shared helpers for the meepo-redis tests (real redis-server from meepo_core's fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from meepo_core.events import RowEvent


@pytest.fixture
def client(redis_db: str) -> Iterator[redis.Redis]:
    """A decoded redis-py client on the freshly flushed test database."""
    conn = redis.Redis.from_url(redis_db, decode_responses=True)
    yield conn
    conn.close()


def user_event(action: Any, pk: int, before: dict[str, Any] | None,
               after: dict[str, Any] | None, *, at: datetime | None = None,
               schema: str = "shop", table: str = "users", sequence: int | None = None,
               ) -> RowEvent:
    return RowEvent(schema, table, action, pk, before, after, None,
                    at or datetime(2026, 1, 1, tzinfo=UTC), None, sequence)
