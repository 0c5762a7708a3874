"""``/readyz`` names a PostgreSQL pipeline whose replication slot retains more WAL than its
``max_retained_wal``: a real server, the pipeline paused while rows are written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import Service, delivered, jsonl_pipeline, wait_for, write_config

pytestmark = pytest.mark.integration  # the source comes from meepo-postgres
pytest.importorskip("meepo_postgres", reason="needs meepo-postgres")

ROWS = 300


def test_readyz_names_a_slot_retaining_more_wal_than_allowed(
        tmp_path: Path, postgres: Any, postgres_db_url: str,
        serve: Callable[..., Service]) -> None:
    dsn = postgres_db_url.replace("+psycopg", "")
    database = dsn.rsplit("/", 1)[1]
    with postgres.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, pad text)")
    pipeline = jsonl_pipeline(tmp_path, "pg")
    pipeline["source"] = {"type": "postgres", "dsn": dsn, "tables": ["public.t"],
                          "slot": f"meepo_{database}", "heartbeat": 1,
                          "max_retained_wal": "1MB"}
    service = serve(write_config(tmp_path, {"pg": pipeline}))
    try:
        wait_for(lambda: service.client.get("/readyz").status_code == 200, timeout=30,
                 what="ready")
        with service.authorized() as client:
            assert client.post("/pipelines/pg/pause").status_code == 200
            with postgres.connect(database, autocommit=True) as conn:
                for i in range(1, ROWS + 1):  # about 3 MB of WAL, 10 kB a row
                    conn.execute("INSERT INTO t VALUES (%s, %s)",
                                 (i, "".join(f"{n:x}" for n in range(i, i + 2500))))
            answer = wait_for(lambda: (r := service.client.get("/readyz")).status_code == 503
                              and r, timeout=20, what="503")
            reason = answer.json()["not_ready"]["pg"]
            assert f"replication slot meepo_{database} retains" in reason
            assert "max_retained_wal (1,048,576)" in reason
            assert service.status("pg")["source_problems"] == [reason]
            assert client.post("/pipelines/pg/resume").status_code == 200
        wait_for(lambda: len(delivered(tmp_path / "pg.out.jsonl")) == ROWS, timeout=60,
                 what="delivery after resume")
    except AssertionError:
        print(service.status("pg"), "\n".join(service.lines[-40:]))
        raise
    finally:
        service.stop()
        with postgres.connect(database, autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                         " WHERE slot_name = %s", (f"meepo_{database}",))
