"""Shared helpers for the postgres source tests (a real PostgreSQL from meepo-testkit)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from meepo_postgres import PostgresSource
from meepo_testkit.source_harness import SourceHarness


def drop_slot(server: Any, slot: str) -> None:
    """End the slot's WAL sender, if any, and drop the slot."""
    with server.connect(autocommit=True) as conn:
        for _ in range(50):
            row = conn.execute(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if row is None:
                return
            if row[0] is None:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
            time.sleep(0.1)
        raise AssertionError(f"slot {slot} stayed active")


@dataclass
class Harness(SourceHarness):
    """One test's schema, slot and publication, and sources reading them."""

    source_class = PostgresSource

    server: Any
    schema: str
    slot: str
    publication: str
    pipeline: str = field(default="pg-tests", kw_only=True)

    def base_options(self) -> dict[str, Any]:
        return {"type": "postgres", "dsn": self.server.url, "tables": [f"{self.schema}.*"],
                "slot": self.slot, "publication": self.publication, "heartbeat": 1}

    def begin(self, **overrides: Any) -> Any:
        """Create the slot and publication (for the tables that exist now); the position
        to drain from afterwards."""
        events, position = self.drain(None, **overrides)
        assert events == []
        return position

    def execute(self, *statements: str) -> None:
        with self.server.connect(autocommit=True) as conn:
            conn.execute(f"SET search_path = {self.schema}")
            for sql in statements:
                conn.execute(sql)

    def transaction(self, *statements: str) -> None:
        with self.server.connect() as conn:
            conn.execute(f"SET search_path = {self.schema}")
            for sql in statements:
                conn.execute(sql)
            conn.commit()

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.server.connect(autocommit=True) as conn:
            conn.execute(f"SET search_path = {self.schema}")
            return conn.execute(sql, params or None).fetchall()

    def confirmed_lsn(self) -> str | None:
        with self.server.connect(autocommit=True) as conn:
            row = conn.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            ).fetchone()
        return None if row is None else row[0]


@pytest.fixture
def harness(postgres: Any, tmp_path: Path) -> Iterator[Harness]:
    """A fresh schema with its own slot and publication; all dropped afterwards."""
    postgres.start()  # in case an earlier test stopped it
    tag = uuid.uuid4().hex[:12]
    h = Harness(postgres, f"s_{tag}", f"meepo_t_{tag}", f"meepo_t_{tag}", tmp_path=tmp_path)
    with postgres.connect(autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {h.schema}")
    try:
        yield h
    finally:
        postgres.start()
        drop_slot(postgres, h.slot)
        with postgres.connect(autocommit=True) as conn:
            conn.execute(f'DROP PUBLICATION IF EXISTS "{h.publication}"')
            conn.execute(f"DROP SCHEMA {h.schema} CASCADE")
