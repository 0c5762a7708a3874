"""An UPDATE that changes a primary key, through the real CLI into every sink: the replicas
must equal the table afterwards and both the old and the new key must be invalidated.
(Found while writing the fault-injection suite, whose random workload avoids pk changes so
that its failures point at the fault, not at this.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meepo_e2e_kit import (
    ITEMS_DDL,
    binlog_end,
    es_docs,
    pg_rows,
    present_keys,
    require_plugins,
    seed_keys,
    sinks,
    source,
    table_rows,
)

from meepo_core.testing import run_meepo, write_config

require_plugins()


def _run(
    mysql_db: Any, redis_db: str, es_url: str, prefix: str, pg_url: str, tmp_path: Path
) -> dict[int, dict[str, Any]]:
    mysql_db.execute(ITEMS_DDL)
    start = binlog_end(mysql_db.server)
    mysql_db.execute("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2)")
    mysql_db.execute("UPDATE items SET id = 10, qty = 5 WHERE id = 1")
    seed_keys(redis_db, [1, 2, 10])
    write_config(
        tmp_path,
        {
            "pk": {
                "source": source(mysql_db.server, mysql_db.name, start),
                "sinks": sinks(mysql_db.name, redis_db, es_url, pg_url, prefix),
            }
        },
    )
    done = run_meepo("run", "pk", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    table = table_rows(mysql_db)
    assert sorted(table) == [2, 10]
    return table


def test_pk_change_reaches_es_and_redis(
    mysql_db: Any, redis_db: str, es_server: Any, es_prefix: str, pg_url: str, tmp_path: Path
) -> None:
    table = _run(mysql_db, redis_db, es_server.url, es_prefix, pg_url, tmp_path)
    assert es_docs(es_server.url, f"{es_prefix}_items") == table
    assert present_keys(redis_db, {1, 2, 10}) == set()


def test_pk_change_reaches_the_sql_replica(
    mysql_db: Any, redis_db: str, es_server: Any, es_prefix: str, pg_url: str, tmp_path: Path
) -> None:
    table = _run(mysql_db, redis_db, es_server.url, es_prefix, pg_url, tmp_path)
    assert pg_rows(pg_url) == table
