"""SIGKILL at random points while a writer commits: after restarts, every committed row
change is in the jsonl sink (the real CLI in subprocesses, checkpoints in a file). Between
two runs a table with JSON, UUID and INET6 columns is renamed (the pipeline is down), and
its rows must still arrive with those types."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from meepo_testkit.crash import (
    ChangeWriter,
    Commit,
    assert_every_change_once_in_order,
    kill_at_random_points,
)

from meepo_core.testing import meepo_command, run_meepo, write_config


@contextmanager
def transactions(db: Any) -> Iterator[Commit]:
    with db.connect() as conn, conn.cursor() as cur:
        def commit(statements: list[tuple[str, tuple[Any, ...]]]) -> None:
            for sql, parameters in statements:
                cur.execute(sql, parameters)
            conn.commit()

        yield commit


class RenamedDocs:
    """Rows of ``docs`` (JSON, UUID, INET6 columns) written between the writer's
    transactions, under the table's current name; :meth:`rename` swaps its name (``docs``,
    ``docs_b``) while the pipeline is down, once it has a checkpoint (a first start at a
    past position without one takes the server's definitions of when it starts: a
    documented limit)."""

    def __init__(self, harness: Any, checkpoint: Path) -> None:
        self.harness = harness
        self.checkpoint = checkpoint
        self.name = "docs"
        self.lock = threading.Lock()
        self.written: dict[int, str] = {}  # id -> the name it was written under
        harness.execute("CREATE TABLE docs (id INT PRIMARY KEY, j JSON, u UUID, a INET6)")

    def write(self, commit: Commit, rng: random.Random) -> None:
        with self.lock:
            key = len(self.written) + 1
            commit([(f"INSERT INTO {self.name} VALUES (%s, %s, %s, %s)",
                     (key, json.dumps({"n": key}), f"123e4567-e89b-12d3-a456-{key:012d}",
                      f"2001:db8::{key:x}"))])
            self.written[key] = self.name

    def rename(self) -> None:
        if not self.checkpoint.exists():
            return
        with self.lock:
            new = "docs_b" if self.name == "docs" else "docs"
            self.harness.execute(f"RENAME TABLE {self.name} TO {new}")
            self.name = new

    def assert_typed(self, records: list[dict[str, Any]]) -> None:
        docs = {r["pk"]: r for r in records if r["table"] in ("docs", "docs_b")}
        assert len(set(self.written.values())) == 2, "no rename between two runs"
        assert {pk: r["table"] for pk, r in docs.items()} == self.written
        for pk, record in docs.items():
            assert record["after"] == {"id": pk, "j": {"n": pk},
                                       "u": f"123e4567-e89b-12d3-a456-{pk:012d}",
                                       "a": f"2001:db8::{pk:x}"}, record


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["file_pos", "mariadb_gtid"])
def test_sigkill_at_random_points_loses_no_committed_change(
    harness: Any, tmp_path: Path, mode: str
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT, note VARCHAR(20))")
    docs = RenamedDocs(harness, tmp_path / ".meepo" / "crash.json")
    start = harness.end() if mode == "file_pos" else harness.gtid()
    out = tmp_path / "out.jsonl"
    source = {"type": "mysql", "dsn": harness.server.dsn, "start": start, "heartbeat": 1,
              "tables": [f"{harness.db.name}.t", f"{harness.db.name}.docs*"]}
    write_config(tmp_path, {"crash": {
        "source": source, "sinks": [{"type": "jsonl", "path": str(out)}],
        "checkpoint": "file:.meepo/crash.json", "batch_size": 40, "batch_wait": 0.05,
    }})
    writer = ChangeWriter(lambda: transactions(harness.db), between=docs.write)
    writer.start()
    try:
        kills = kill_at_random_points(meepo_command("run", "crash"), tmp_path, runs=5,
                                      rng=random.Random(mode), seconds=(0.3, 2.5),
                                      after_each=docs.rename)
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.error is None, writer.error
    assert kills >= 4, (tmp_path / "run.log").read_text()
    final = run_meepo("run", "crash", "--once", cwd=tmp_path, timeout=120)
    assert final.returncode == 0, final.stderr
    checkpoint = json.loads((tmp_path / ".meepo" / "crash.json").read_text())["position"]
    if mode == "mariadb_gtid":
        assert checkpoint["gtid"] == harness.gtid()

    records = [json.loads(line) for line in out.read_text().splitlines()]
    docs.assert_typed(records)
    changes = tmp_path / "t.jsonl"  # the writer's table alone
    changes.write_text("".join(json.dumps(r) + "\n" for r in records if r["table"] == "t"))
    assert_every_change_once_in_order(changes, writer.changes)
