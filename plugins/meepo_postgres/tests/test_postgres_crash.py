"""SIGKILL at random points while a writer commits: after restarts, every committed row
change is in the jsonl sink, and the slot never confirmed a change its checkpoint did not
cover (the real CLI in subprocesses, checkpoints in a file)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from meepo_postgres.positions import parse_lsn

from meepo_core.testing import meepo_command, run_meepo, write_config


class Writer(threading.Thread):
    """Commits small transactions (3 inserts, 1 update, sometimes 1 delete) until stopped,
    recording each change only once its COMMIT returned; every few transactions it also
    writes to a table the pipeline does not follow."""

    def __init__(self, harness: Any) -> None:
        super().__init__(daemon=True)
        self.harness = harness
        self.stop = threading.Event()
        self.changes: list[tuple[str, int, int | None]] = []  # (action, id, v after)
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(7)
        next_id, live = 1, {}
        try:
            with self.harness.server.connect() as conn:
                conn.execute(f"SET search_path = {self.harness.schema}")
                while not self.stop.is_set():
                    pending = []
                    for _ in range(3):
                        conn.execute("INSERT INTO t VALUES (%s, 0, 'x')", (next_id,))
                        pending.append(("write", next_id, 0))
                        live[next_id] = 0
                        next_id += 1
                    target = rng.choice(list(live))
                    live[target] += 1
                    conn.execute("UPDATE t SET v = %s WHERE id = %s", (live[target], target))
                    pending.append(("update", target, live[target]))
                    if rng.random() < 0.3:
                        victim = rng.choice(list(live))
                        del live[victim]
                        conn.execute("DELETE FROM t WHERE id = %s", (victim,))
                        pending.append(("delete", victim, None))
                    conn.commit()
                    self.changes.extend(pending)
                    if rng.random() < 0.2:
                        conn.execute("INSERT INTO noise SELECT generate_series(1, 20)")
                        conn.commit()
                    time.sleep(0.005)
        except BaseException as exc:
            self.error = exc


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
    writer = Writer(harness)
    writer.start()
    rng = random.Random(11)
    kills = 0
    samples: list[tuple[int, int]] = []  # (checkpoint, slot's confirmed position) per kill
    try:
        for _ in range(6):
            with (tmp_path / "run.log").open("ab") as log:
                proc = subprocess.Popen(meepo_command("run", "crash"), cwd=tmp_path,
                                        stdout=subprocess.DEVNULL, stderr=log)
                time.sleep(rng.uniform(1.5, 4.5))  # start-up takes ~1.5 s
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                proc.wait(10)
            checkpoint = json.loads(checkpoint_file.read_text())["position"]
            samples.append((parse_lsn(checkpoint["lsn"]), parse_lsn(harness.confirmed_lsn())))
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

    records = [json.loads(line) for line in out.read_text().splitlines()]
    sequences = [r["sequence"] for r in records]
    assert sequences == sorted(set(sequences))  # strictly increasing: replays were skipped
    order = [(r["action"], r["pk"], (r["after"] or {}).get("v")) for r in records]
    assert len(writer.changes) > 200
    missing = [change for change in writer.changes if change not in set(order)]
    assert missing == [], f"{len(missing)} of {len(writer.changes)} changes lost: {missing[:5]}"
    assert order == writer.changes  # commit order is kept
