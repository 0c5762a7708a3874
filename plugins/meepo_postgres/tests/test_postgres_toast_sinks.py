"""Unchanged TOAST values through real sinks: a 1 MB text column survives an update of
another column in a SQL replica (meepo-sqlalchemy's ``sql`` sink) and in Elasticsearch
(meepo-es), because the source marks it UNCHANGED instead of sending NULL."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from meepo_core.testing import run_meepo, write_config

pytestmark = pytest.mark.integration

BIG = "".join(chr(ord("a") + i % 26) for i in range(1_000_000))


@pytest.fixture
def replica_db(postgres: Any) -> Any:
    name = f"replica_{uuid.uuid4().hex[:10]}"
    with postgres.connect(autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with postgres.connect(name, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id INT PRIMARY KEY, title TEXT, body TEXT)")
    yield name
    with postgres.connect(autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def prepare(harness: Any) -> None:
    harness.execute("CREATE TABLE docs (id INT PRIMARY KEY, title TEXT, body TEXT)",
                    "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL")


def run_twice(harness: Any, tmp_path: Path, sink: dict[str, Any]) -> str:
    """Insert the big row, replicate; update another column, replicate."""
    write_config(tmp_path, {"toast": {"source": harness.options(), "sinks": [sink]}})
    created = run_meepo("run", "toast", "--once", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    harness.execute(f"INSERT INTO docs VALUES (1, 'first', '{BIG}')")
    inserted = run_meepo("run", "toast", "--once", cwd=tmp_path)
    assert inserted.returncode == 0, inserted.stderr
    harness.execute("UPDATE docs SET title = 'second' WHERE id = 1")
    updated = run_meepo("run", "toast", "--once", cwd=tmp_path)
    assert updated.returncode == 0, updated.stderr
    return updated.stderr[-3000:]


def test_big_text_survives_an_update_in_the_sql_replica(
    harness: Any, replica_db: str, tmp_path: Path
) -> None:
    pytest.importorskip("meepo_sqlalchemy", reason="needs the sql sink (meepo-sqlalchemy)")
    prepare(harness)
    url = f"postgresql://postgres@{harness.server.host}:{harness.server.port}/{replica_db}"
    log = run_twice(harness, tmp_path, {"type": "sql", "url": url,
                                        "tables": {f"{harness.schema}.docs": "docs"}})
    with harness.server.connect(replica_db) as conn:
        row = conn.execute("SELECT id, title, body FROM docs").fetchone()
    assert row == (1, "second", BIG), log


def test_big_text_survives_an_update_in_elasticsearch(
    harness: Any, es_server: Any, tmp_path: Path
) -> None:
    pytest.importorskip("meepo_es", reason="needs the elasticsearch sink (meepo-es)")
    prepare(harness)
    index = f"toast_{uuid.uuid4().hex[:8]}"
    log = run_twice(harness, tmp_path, {"type": "elasticsearch", "hosts": [es_server.url],
                                        "index": index, "refresh": "true"})
    with urllib.request.urlopen(f"{es_server.url}/{index}/_doc/1") as response:
        document = json.load(response)["_source"]
    assert document == {"id": 1, "title": "second", "body": BIG}, log
