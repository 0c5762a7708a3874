"""Fixtures for the meepo-sqlalchemy tests: a database URL per dialect, fresh per test."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from meepo_core.builtin.memory import reset_channels

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _fresh_memory_channels() -> None:
    reset_channels()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def pg_url(postgres_db_url: str) -> str:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    return postgres_db_url


@pytest.fixture
def mariadb_url(mysql_db: Any) -> str:
    server = mysql_db.server
    return (f"mysql+pymysql://{server.user}:{server.password}@{server.host}:{server.port}/"
            f"{mysql_db.name}")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite, PostgreSQL and MariaDB."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mariadb": "mariadb_url"}
    return str(request.getfixturevalue(fixture[request.param]))
