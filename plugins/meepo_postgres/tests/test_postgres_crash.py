"""SIGKILL at random points while a writer commits: after restarts, every committed row
change is in the jsonl sink, and the slot never confirmed a change its checkpoint did not
cover (the real CLI in subprocesses, checkpoints in a file)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from meepo_postgres.positions import parse_lsn
from meepo_testkit.crash import (
    ChangeWriter,
    Commit,
    assert_every_change_once_in_order,
    kill_at_random_points,
)

from meepo_core.testing import meepo_command, run_meepo, write_config


@contextmanager
def transactions(harness: Any) -> Iterator[Commit]:
    with harness.server.connect() as conn:
        conn.execute(f"SET search_path = {harness.schema}")

        def commit(statements: list[tuple[str, tuple[Any, ...]]]) -> None:
            for sql, parameters in statements:
                conn.execute(sql, parameters)
            conn.commit()

        yield commit


def write_noise(commit: Commit, rng: random.Random) -> None:
    """Sometimes a transaction on a table the pipeline does not follow."""
    if rng.random() < 0.2:
        commit([("INSERT INTO noise SELECT generate_series(1, 20)", ())])


def commits_of_followed_transactions(harness: Any, observer: str) -> list[int]:
    """End LSNs of the commits of transactions that changed ``t``, from a second slot
    (test_decoding) that saw the same WAL and was never consumed."""
    rows = harness.query(
        "SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_changes(%s, NULL, NULL)",
        observer,
    )
    touched = {xid for _, xid, data in rows if data.startswith(f"table {harness.schema}.t:")}
    return [parse_lsn(lsn) for lsn, xid, data in rows
            if data.startswith("COMMIT") and xid in touched]


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_committed_change(
    harness: Any, tmp_path: Path
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT, note TEXT)",
                    "CREATE TABLE noise (n INT)")
    out = tmp_path / "out.jsonl"
    checkpoint_file = tmp_path / ".meepo" / "crash.json"
    source = harness.options(tables=[f"{harness.schema}.t"])
    write_config(tmp_path, {"crash": {
        "source": source, "sinks": [{"type": "jsonl", "path": str(out)}],
        "checkpoint": "file:.meepo/crash.json", "batch_size": 40, "batch_wait": 0.05,
    }})
    observer = f"obs_{harness.slot}"
    created = run_meepo("run", "crash", "--once", cwd=tmp_path)  # slot, publication, start
    assert created.returncode == 0, created.stderr
    harness.execute(f"SELECT pg_create_logical_replication_slot('{observer}', 'test_decoding')")
    writer = ChangeWriter(lambda: transactions(harness), between=write_noise)
    writer.start()
    samples: list[tuple[int, int]] = []  # (checkpoint, slot's confirmed position) per kill

    def sample() -> None:
        checkpoint = json.loads(checkpoint_file.read_text())["position"]
        samples.append((parse_lsn(checkpoint["lsn"]), parse_lsn(harness.confirmed_lsn())))

    try:  # start-up takes ~1.5 s
        kills = kill_at_random_points(meepo_command("run", "crash"), tmp_path, runs=6,
                                      rng=random.Random(11), seconds=(1.5, 4.5),
                                      after_each=sample)
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.error is None, writer.error
    assert kills >= 5, (tmp_path / "run.log").read_text()
    final = run_meepo("run", "crash", "--once", cwd=tmp_path, timeout=120)
    assert final.returncode == 0, final.stderr

    # The slot never confirmed a change that its checkpoint did not cover: where it is past
    # the checkpoint, the WAL between ends no transaction of the followed table.
    commits = commits_of_followed_transactions(harness, observer)
    harness.execute(f"SELECT pg_drop_replication_slot('{observer}')")
    for checkpoint_lsn, confirmed in samples:
        skipped = [c for c in commits if checkpoint_lsn < c <= confirmed]
        assert skipped == [], (checkpoint_lsn, confirmed, skipped)

    assert_every_change_once_in_order(out, writer.changes)
