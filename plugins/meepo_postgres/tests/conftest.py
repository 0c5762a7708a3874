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

from meepo_core import Batch, Options, PipelineContext, PipelineSettings, RowEvent
from meepo_core.testing import make_context


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
class Harness:
    """One test's schema, slot and publication, and sources reading them."""

    server: Any
    schema: str
    tmp_path: Path
    slot: str
    publication: str
    pipeline: str = "pg-tests"
    contexts: list[PipelineContext] = field(default_factory=list)

    def options(self, **overrides: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "type": "postgres", "dsn": self.server.url, "tables": [f"{self.schema}.*"],
            "slot": self.slot, "publication": self.publication, "heartbeat": 1,
        }
        options.update(overrides)
        return {key: value for key, value in options.items() if value is not None}

    def source(self, **overrides: Any) -> PostgresSource:
        return PostgresSource.from_options(
            Options(self.options(**overrides), "source", self.tmp_path)
        )

    def context(self, batch_size: int = 1000, batch_wait: float = 0.05) -> PipelineContext:
        settings = PipelineSettings(batch_size=batch_size, batch_wait=batch_wait)
        context = make_context(self.tmp_path, self.pipeline, settings)
        self.contexts.append(context)
        return context

    def batches(
        self, checkpoint: Any = None, *, batch_size: int = 1000, ack: bool = True,
        **overrides: Any,
    ) -> list[Batch]:
        """Every batch of a ``once`` stream from ``checkpoint``, acknowledging positions as
        the runner does after checkpoints (unless ``ack`` is False)."""
        source = self.source(**overrides)
        found = []
        try:
            for batch in source.stream(checkpoint, self.context(batch_size), once=True):
                found.append(batch)
                if ack and batch.position is not None:
                    source.acknowledge(batch.position)
        finally:
            source.close()
        return found

    def drain(
        self, checkpoint: Any = None, *, ack: bool = True, **overrides: Any
    ) -> tuple[list[RowEvent], Any]:
        """Events and last position of a ``once`` stream."""
        events: list[RowEvent] = []
        position = checkpoint
        for batch in self.batches(checkpoint, ack=ack, **overrides):
            events.extend(batch.events)
            if batch.position is not None:
                position = batch.position
        return events, position

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
    h = Harness(postgres, f"s_{tag}", tmp_path, f"meepo_t_{tag}", f"meepo_t_{tag}")
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
