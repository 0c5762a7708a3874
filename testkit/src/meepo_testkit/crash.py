"""Crash tests of sources: a writer that commits known changes while ``meepo run`` is killed
at random points, and the check that the jsonl sink then holds every committed change, once
and in commit order."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

#: A change as the jsonl sink's record shows it: (action, id, column ``v`` after or None).
Change = tuple[str, int, int | None]
#: Runs one transaction's statements ((sql, parameters) pairs) and commits it.
Commit = Callable[[list[tuple[str, tuple[Any, ...]]]], None]


class ChangeWriter(threading.Thread):
    """Commits small transactions to table ``t (id INT PRIMARY KEY, v INT, note ...)`` until
    :attr:`stop` is set: 3 inserts, 1 update, sometimes 1 delete, with ``%s`` parameters.
    Each change is recorded in :attr:`changes` only once its commit returned. ``session``
    opens a connection and gives the function that commits one transaction on it;
    ``between``, if given, runs on that function after each transaction (writes to tables
    the pipeline does not follow, say). An error ends the thread and is kept in
    :attr:`error`."""

    def __init__(self, session: Callable[[], AbstractContextManager[Commit]],
                 between: Callable[[Commit, random.Random], None] | None = None) -> None:
        super().__init__(daemon=True)
        self.session = session
        self.between = between
        self.stop = threading.Event()
        self.changes: list[Change] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(7)
        next_id, live = 1, {}
        try:
            with self.session() as commit:
                while not self.stop.is_set():
                    statements: list[tuple[str, tuple[Any, ...]]] = []
                    pending: list[Change] = []
                    for _ in range(3):
                        statements.append(("INSERT INTO t VALUES (%s, 0, 'x')", (next_id,)))
                        pending.append(("write", next_id, 0))
                        live[next_id] = 0
                        next_id += 1
                    target = rng.choice(list(live))
                    live[target] += 1
                    statements.append(("UPDATE t SET v = %s WHERE id = %s",
                                       (live[target], target)))
                    pending.append(("update", target, live[target]))
                    if rng.random() < 0.3:
                        victim = rng.choice(list(live))
                        del live[victim]
                        statements.append(("DELETE FROM t WHERE id = %s", (victim,)))
                        pending.append(("delete", victim, None))
                    commit(statements)
                    self.changes.extend(pending)
                    if self.between is not None:
                        self.between(commit, rng)
                    time.sleep(0.005)
        except BaseException as exc:  # reported by the test
            self.error = exc


def kill_at_random_points(
    command: list[str], cwd: Path, *, runs: int, rng: random.Random,
    seconds: tuple[float, float], after_each: Callable[[], None] | None = None,
) -> int:
    """Start ``command`` ``runs`` times, each killed with SIGKILL after a random number of
    ``seconds`` (uniform in the range) unless it ended first; stderr goes to ``run.log`` in
    ``cwd``. ``after_each`` runs after each process ended. Returns how many were killed."""
    kills = 0
    for _ in range(runs):
        with (cwd / "run.log").open("ab") as log:
            process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
            time.sleep(rng.uniform(*seconds))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(10)
        if after_each is not None:
            after_each()
    return kills


def assert_every_change_once_in_order(jsonl: Path, changes: list[Change]) -> None:
    """The jsonl sink's row records (replays skipped by sequence; schema changes, which a
    source may restate at each start, left out) are exactly ``changes``, in order; there
    must be more than 200 of them for the test to mean something."""
    records = [record for record in map(json.loads, jsonl.read_text().splitlines())
               if record.get("action") != "schema"]
    sequences = [record["sequence"] for record in records]
    assert sequences == sorted(set(sequences))  # strictly increasing: replays were skipped
    order = [(r["action"], r["pk"], (r["after"] or {}).get("v")) for r in records]
    assert len(changes) > 200
    seen = set(order)
    missing = [change for change in changes if change not in seen]
    assert missing == [], f"{len(missing)} of {len(changes)} changes lost: {missing[:5]}"
    assert order == changes  # commit order is kept

