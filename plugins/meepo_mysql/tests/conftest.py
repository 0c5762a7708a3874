"""Shared helpers for the mysql source tests (real MariaDB from meepo-core's fixtures)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from meepo_mysql import MySQLSource
from meepo_testkit.source_harness import SourceHarness

sys.path.insert(0, str(Path(__file__).parent))  # mysql_differential, the shared checker


def binlog_end(server: Any) -> str:
    """``FILE:POS`` of the server's binlog end right now."""
    file, pos = server.execute("SHOW MASTER STATUS", database=None)[0][:2]
    return f"{file}:{pos}"


def gtid_now(server: Any) -> str:
    return str(server.execute("SELECT @@GLOBAL.gtid_binlog_pos", database=None)[0][0])


@dataclass
class Harness(SourceHarness):
    """One test's database, and sources reading it from where the test began."""

    source_class = MySQLSource

    db: Any
    start: str = ""
    pipeline: str = field(default="mysql-tests", kw_only=True)

    @property
    def server(self) -> Any:
        return self.db.server

    def base_options(self) -> dict[str, Any]:
        return {"type": "mysql", "dsn": self.server.dsn, "tables": [f"{self.db.name}.*"],
                "start": self.start, "heartbeat": 1}

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
    h = Harness(mysql_db, tmp_path=tmp_path)
    h.start = binlog_end(mysql_db.server)
    return h
