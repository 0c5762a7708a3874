"""End to end: a MariaDB table, through the mysql source and the elasticsearch sink, gives
an index equal to the table after a random workload, also across a SIGKILL of the runner."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from meepo_es.config import parse_settings
from meepo_es.documents import DocumentBuilder

from meepo_core.options import Options
from meepo_core.testing import meepo_command, run_meepo, write_config

pytestmark = pytest.mark.integration
pytest.importorskip("meepo_mysql", reason="needs the mysql source plugin (meepo-mysql)")

TABLE = ("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT, "
         "price DECIMAL(10,2), updated DATETIME(3), blob_col VARBINARY(16))")


def start_position(mysql_db: Any) -> str:
    file, pos = mysql_db.server.execute("SHOW MASTER STATUS", database=None)[0][:2]
    return f"{file}:{pos}"


def pipeline(mysql_db: Any, url: str, prefix: str, start: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": {"type": "mysql", "dsn": mysql_db.server.dsn,
                   "tables": [f"{mysql_db.name}.items"], "start": start},
        "sinks": [{"type": "elasticsearch", "hosts": [url], "index": prefix + "_{table}",
                   "tables": {"items": {"exclude": ["blob_col"], "rename": {"qty": "quantity"}}}}],
        **extra,
    }


def expected_index(mysql_db: Any, config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The table as documents, shaped and converted by the sink's own rules."""
    settings = parse_settings(Options(config["sinks"][0], "sinks[0]", tmp_path))
    builder = DocumentBuilder(settings)
    rule = settings.rule(mysql_db.name, "items")
    with mysql_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM items")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
    return {builder.doc_id(row["id"]): builder.document(rule, row) for row in rows}


class Workload:
    """Random inserts, updates (some changing the pk) and deletes, some in multi-row
    transactions; deterministic per seed."""

    def __init__(self, mysql_db: Any, seed: int) -> None:
        self.db = mysql_db
        self.rng = random.Random(seed)
        self.ids: set[int] = set()
        self.next_id = 1

    def step(self, conn: Any) -> None:
        rng = self.rng
        with conn.cursor() as cur:
            roll = rng.random()
            if roll < 0.45 or len(self.ids) < 5:
                rows = []
                for _ in range(rng.choice([1, 1, 3])):
                    day, millis = rng.randrange(1, 29), rng.randrange(1000)
                    rows.append((self.next_id, f"n{rng.randrange(10**6)}", rng.randrange(100),
                                 Decimal(rng.randrange(100000)) / 100,
                                 f"2026-01-{day:02d} 10:00:00.{millis:03d}", rng.randbytes(4)))
                    self.ids.add(self.next_id)
                    self.next_id += 1
                cur.executemany("INSERT INTO items VALUES (%s, %s, %s, %s, %s, %s)", rows)
            elif roll < 0.75:
                target = rng.choice(sorted(self.ids))
                cur.execute("UPDATE items SET name = %s, qty = qty + 1, price = %s WHERE id = %s",
                            (f"u{rng.randrange(10**6)}", Decimal(rng.randrange(1000)) / 10, target))
            elif roll < 0.82:
                target = rng.choice(sorted(self.ids))
                moved = self.next_id
                self.next_id += 1
                cur.execute("UPDATE items SET id = %s WHERE id = %s", (moved, target))
                self.ids.discard(target)
                self.ids.add(moved)
            elif roll < 0.90:
                low = rng.choice(sorted(self.ids))
                cur.execute("UPDATE items SET qty = 0 WHERE id >= %s AND id < %s", (low, low + 5))
            else:
                target = rng.choice(sorted(self.ids))
                cur.execute("DELETE FROM items WHERE id = %s", (target,))
                self.ids.discard(target)
        conn.commit()

    def run(self, steps: int) -> None:
        with self.db.connect() as conn:
            for _ in range(steps):
                self.step(conn)


def test_index_equals_the_table_after_a_random_workload(
    mysql_db: Any, es_server: Any, es: Any, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    start = start_position(mysql_db)
    mysql_db.execute(TABLE)
    Workload(mysql_db, seed=6).run(300)
    config = pipeline(mysql_db, es_server.url, prefix, start, batch_size=50)
    write_config(tmp_path, {"p": config})
    done = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = expected_index(mysql_db, config, tmp_path)
    assert len(expected) > 20
    assert read_index(f"{prefix}_items") == expected
    assert not (tmp_path / ".meepo/p.dead.jsonl").exists()
    # A replay of everything from the start changes nothing.
    (tmp_path / ".meepo/p.json").unlink()
    again = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert read_index(f"{prefix}_items") == expected


def test_index_equals_the_table_when_the_runner_is_killed_mid_stream(
    mysql_db: Any, es_server: Any, es: Any, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    start = start_position(mysql_db)
    mysql_db.execute(TABLE)
    config = pipeline(mysql_db, es_server.url, prefix, start, batch_size=10, batch_wait=0.05)
    write_config(tmp_path, {"p": config})
    workload = Workload(mysql_db, seed=66)
    workload.run(100)
    checkpoint = tmp_path / ".meepo/p.json"
    runner = subprocess.Popen(meepo_command("run", "p"), cwd=tmp_path, env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not checkpoint.exists() and time.monotonic() < deadline:
            assert runner.poll() is None, runner.stderr.read().decode() if runner.stderr else ""
            time.sleep(0.05)
        assert checkpoint.exists(), "the runner never checkpointed"
        workload.run(150)  # the runner is streaming these as they commit
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(10)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)
        if runner.stderr:
            runner.stderr.close()
    assert runner.returncode == -signal.SIGKILL
    workload.run(100)  # changes made while it was down
    resumed = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert read_index(f"{prefix}_items") == expected_index(mysql_db, config, tmp_path)
