"""SIGKILL at random points while a writer commits: after restarts, every committed row
change is in the jsonl sink (the real CLI in subprocesses, checkpoints in a file)."""

from __future__ import annotations

import json
import random
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


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["file_pos", "mariadb_gtid"])
def test_sigkill_at_random_points_loses_no_committed_change(
    harness: Any, tmp_path: Path, mode: str
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT, note VARCHAR(20))")
    start = harness.end() if mode == "file_pos" else harness.gtid()
    out = tmp_path / "out.jsonl"
    source = {"type": "mysql", "dsn": harness.server.dsn, "tables": [f"{harness.db.name}.t"],
              "start": start, "heartbeat": 1}
    write_config(tmp_path, {"crash": {
        "source": source, "sinks": [{"type": "jsonl", "path": str(out)}],
        "checkpoint": "file:.meepo/crash.json", "batch_size": 40, "batch_wait": 0.05,
    }})
    writer = ChangeWriter(lambda: transactions(harness.db))
    writer.start()
    try:
        kills = kill_at_random_points(meepo_command("run", "crash"), tmp_path, runs=5,
                                      rng=random.Random(mode), seconds=(0.3, 2.5))
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

    assert_every_change_once_in_order(out, writer.changes)
