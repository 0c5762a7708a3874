"""Shared helpers for the postgres source tests (a real PostgreSQL from meepo-testkit)."""

from __future__ import annotations

import threading
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


class Follower:
    """Runs a source's non-``once`` stream in a thread, collecting batches and
    acknowledging their positions as the runner does."""

    def __init__(self, source: PostgresSource, context: PipelineContext, start: Any) -> None:
        self.source = source
        self.context = context
        self.batches: list[Batch] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, args=(start,), daemon=True)
        self.thread.start()

    def _run(self, start: Any) -> None:
        try:
            for batch in self.source.stream(start, self.context, once=False):
                with self._lock:
                    self.batches.append(batch)
                if batch.position is not None:
                    self.source.acknowledge(batch.position)
        except BaseException as exc:  # reported by the test
            self.error = exc

    @property
    def events(self) -> list[RowEvent]:
        with self._lock:
            return [event for batch in self.batches for event in batch.events]

    @property
    def position(self) -> Any:
        with self._lock:
            found = [b.position for b in self.batches if b.position is not None]
        return found[-1] if found else None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[RowEvent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise AssertionError(f"stream failed: {self.error!r}") from self.error
            events = self.events
            if len(events) >= count:
                return events
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.events)} of {count} events after {timeout}s")

    def stop(self) -> None:
        self.context.stopping.set()
        self.thread.join(10)
        self.source.close()
        assert not self.thread.is_alive(), "the stream did not stop"


@pytest.fixture
def follow() -> Iterator[Any]:
    """``follow(source, context, start)`` starts a :class:`Follower`; all are stopped after."""
    started: list[Follower] = []

    def start(source: PostgresSource, context: PipelineContext, position: Any) -> Follower:
        follower = Follower(source, context, position)
        started.append(follower)
        return follower

    yield start
    for follower in started:
        follower.context.stopping.set()
        follower.source.close()
        follower.thread.join(10)
