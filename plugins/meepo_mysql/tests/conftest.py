"""Shared helpers for the mysql source tests (real MariaDB from meepo-core's fixtures)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from meepo_mysql import MySQLSource

from meepo_core import Batch, Options, PipelineContext, RowEvent
from meepo_core.settings import PipelineSettings
from meepo_core.testing import make_context

sys.path.insert(0, str(Path(__file__).parent))  # mysql_differential, the shared checker


def binlog_end(server: Any) -> str:
    """``FILE:POS`` of the server's binlog end right now."""
    file, pos = server.execute("SHOW MASTER STATUS", database=None)[0][:2]
    return f"{file}:{pos}"


def gtid_now(server: Any) -> str:
    return str(server.execute("SELECT @@GLOBAL.gtid_binlog_pos", database=None)[0][0])


@dataclass
class Harness:
    """One test's database, and sources reading it from where the test began."""

    db: Any
    tmp_path: Path
    start: str = ""
    pipeline: str = "mysql-tests"
    contexts: list[PipelineContext] = field(default_factory=list)

    @property
    def server(self) -> Any:
        return self.db.server

    def options(self, **overrides: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "type": "mysql", "dsn": self.server.dsn, "tables": [f"{self.db.name}.*"],
            "start": self.start, "heartbeat": 1,
        }
        options.update(overrides)
        return {key: value for key, value in options.items() if value is not None}

    def source(self, **overrides: Any) -> MySQLSource:
        return MySQLSource.from_options(
            Options(self.options(**overrides), "source", self.tmp_path)
        )

    def context(self, batch_size: int = 1000, batch_wait: float = 0.05) -> PipelineContext:
        settings = PipelineSettings(batch_size=batch_size, batch_wait=batch_wait)
        context = make_context(self.tmp_path, self.pipeline, settings)
        self.contexts.append(context)
        return context

    def batches(
        self, checkpoint: Any = None, *, batch_size: int = 1000, **overrides: Any
    ) -> list[Batch]:
        """Every batch of a ``once`` stream from ``checkpoint`` (None: the configured start)."""
        source = self.source(**overrides)
        try:
            return list(source.stream(checkpoint, self.context(batch_size), once=True))
        finally:
            source.close()

    def drain(self, checkpoint: Any = None, **overrides: Any) -> tuple[list[RowEvent], Any]:
        """Events and last position of a ``once`` stream."""
        events: list[RowEvent] = []
        position = checkpoint
        for batch in self.batches(checkpoint, **overrides):
            events.extend(batch.events)
            if batch.position is not None:
                position = batch.position
        return events, position

    def execute(self, *statements: str) -> None:
        for sql in statements:
            self.db.execute(sql)

    def end(self) -> str:
        return binlog_end(self.server)

    def gtid(self) -> str:
        return gtid_now(self.server)

    def transaction(self, *statements: str) -> None:
        with self.db.connect() as conn, conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
            conn.commit()


@pytest.fixture
def harness(mysql_db: Any, tmp_path: Path) -> Harness:
    """A fresh database; ``start`` is the binlog end before the test's own statements."""
    h = Harness(mysql_db, tmp_path)
    h.start = binlog_end(mysql_db.server)
    return h
