"""SIGKILL at random points while a writer commits: after restarts, every committed row
change is in the jsonl sink (the real CLI in subprocesses, checkpoints in a file)."""

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

from meepo_core.testing import meepo_command, run_meepo, write_config


class Writer(threading.Thread):
    """Commits small transactions (3 inserts, 1 update, sometimes 1 delete) until stopped,
    recording each change only once its COMMIT returned."""

    def __init__(self, db: Any) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.changes: list[tuple[str, int, int | None]] = []  # (action, id, v after)
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(7)
        next_id, live = 1, {}
        try:
            with self.db.connect() as conn, conn.cursor() as cur:
                while not self.stop.is_set():
                    pending = []
                    for _ in range(3):
                        cur.execute("INSERT INTO t VALUES (%s, 0, 'x')", (next_id,))
                        pending.append(("write", next_id, 0))
                        live[next_id] = 0
                        next_id += 1
                    target = rng.choice(list(live))
                    live[target] += 1
                    cur.execute("UPDATE t SET v = %s WHERE id = %s", (live[target], target))
                    pending.append(("update", target, live[target]))
                    if rng.random() < 0.3:
                        victim = rng.choice(list(live))
                        del live[victim]
                        cur.execute("DELETE FROM t WHERE id = %s", (victim,))
                        pending.append(("delete", victim, None))
                    conn.commit()
                    self.changes.extend(pending)
                    time.sleep(0.005)
        except BaseException as exc:
            self.error = exc


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
    writer = Writer(harness.db)
    writer.start()
    rng = random.Random(mode)
    kills = 0
    try:
        for _ in range(5):
            with (tmp_path / "run.log").open("ab") as log:
                proc = subprocess.Popen(meepo_command("run", "crash"), cwd=tmp_path,
                                        stdout=subprocess.DEVNULL, stderr=log)
                time.sleep(rng.uniform(0.3, 2.5))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                proc.wait(10)
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
    sequences = [r["sequence"] for r in records]
    assert sequences == sorted(set(sequences))  # strictly increasing: replays were skipped
    seen = {(r["action"], r["pk"], (r["after"] or {}).get("v")) for r in records}
    missing = [change for change in writer.changes if change not in seen]
    assert len(writer.changes) > 200
    assert missing == [], f"{len(missing)} of {len(writer.changes)} changes lost: {missing[:5]}"
    # Commit order is kept.
    order = [(r["action"], r["pk"], (r["after"] or {}).get("v")) for r in records]
    assert order == writer.changes
