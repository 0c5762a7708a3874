"""Fault injection through the real ``meepo run`` CLI: a MariaDB table streamed by the
``mysql`` binlog source into the ``redis`` (invalidation), ``elasticsearch`` and ``sql``
(PostgreSQL) sinks while a random workload commits.

* the runner is SIGKILLed at random points and restarted; nothing is lost;
* Redis, then Elasticsearch, is down for about 10 s: the runner retries with backoff,
  logs it naming the sink, keeps the checkpoint, and recovers without loss;
* MariaDB restarts: the source reconnects and nothing is lost.

Seeds are printed (``-s``) and included in failure messages; set ``MEEPO_E2E_SEED`` to
replay one.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from meepo_e2e_kit import (
    ITEMS_DDL,
    Workload,
    binlog_end,
    es_docs,
    new_database,
    pg_rows,
    present_keys,
    read_checkpoint,
    require_plugins,
    seed_keys,
    sinks,
    source,
    table_rows,
    wait_until,
)
from meepo_testkit.servers import ElasticsearchServer, RedisServer

from meepo_core.testing import meepo_command, run_meepo, write_config

require_plugins()

#: Cache keys item:1 .. item:KEY_SPACE-1 are seeded; the workload stays below it.
KEY_SPACE = 20_000


def pick_seed() -> int:
    seed = int(os.environ.get("MEEPO_E2E_SEED") or random.SystemRandom().randrange(2**31))
    print(f"\nMEEPO_E2E_SEED={seed}")
    return seed


class Runner:
    """``meepo run NAME`` in the background, its stderr appended to ``log``."""

    def __init__(self, cwd: Path, name: str, log: Path) -> None:
        self.log = log
        with log.open("ab") as handle:
            self.proc = subprocess.Popen(
                meepo_command("run", name), cwd=cwd, stdout=subprocess.DEVNULL, stderr=handle
            )

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        """Graceful stop (SIGTERM); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def runners() -> Iterator[list[Runner]]:
    """Runners started by a test; any still alive afterwards are killed."""
    started: list[Runner] = []
    yield started
    for runner in started:
        if runner.alive():
            runner.kill()


def assert_replicas_equal_table(
    db: Any, es_url: str, index: str, pg_url: str, context: str
) -> dict[int, dict[str, Any]]:
    table = table_rows(db)
    docs = es_docs(es_url, index)
    replica = pg_rows(pg_url)
    assert docs == table, f"{context}: ES index differs: {_diff(table, docs)}"
    assert replica == table, f"{context}: SQL replica differs: {_diff(table, replica)}"
    return table


def _diff(expected: dict[int, Any], actual: dict[int, Any]) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    return (
        f"{len(missing)} missing {missing[:5]}, {len(extra)} extra {extra[:5]}, "
        f"{len(changed)} different {[(expected[k], actual[k]) for k in changed[:3]]}"
    )


# -- SIGKILL ---------------------------------------------------------------------------


def _streaming(runner: Runner, before: int) -> bool:
    """The runner logged its source's start (or died, which the caller reports)."""
    return runner.stderr().count("mysql source: ") > before or not runner.alive()


@pytest.mark.slow
def test_runner_sigkilled_at_random_points_loses_nothing(
    mysql_db: Any,
    redis_db: str,
    es_server: Any,
    es_prefix: str,
    pg_url: str,
    tmp_path: Path,
    runners: list[Runner],
) -> None:
    seed = pick_seed()
    rng = random.Random(seed)
    mysql_db.execute(ITEMS_DDL)
    start = binlog_end(mysql_db.server)
    with mysql_db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s, %s)", [(i, f"init{i}", i % 7) for i in range(1, 101)]
        )
        conn.commit()
    write_config(
        tmp_path,
        {
            "kill": {
                "source": source(mysql_db.server, mysql_db.name, start),
                "sinks": sinks(mysql_db.name, redis_db, es_server.url, pg_url, es_prefix),
                "checkpoint": "file:.meepo/kill.json",
                "batch_size": 50,
                "batch_wait": 0.05,
            }
        },
    )
    checkpoint = tmp_path / ".meepo" / "kill.json"
    boot = run_meepo("run", "kill", "--once", cwd=tmp_path)
    assert boot.returncode == 0, boot.stderr
    # The cache now holds an entry for every row (and for ids the workload will insert).
    seed_keys(redis_db, range(1, KEY_SPACE))

    workload = Workload(mysql_db, seed, first_id=101, pause=0.01)
    workload.live = list(range(1, 101))
    workload.start()
    log = tmp_path / "runs.log"
    kills = 0
    positions = [read_checkpoint(checkpoint)]
    try:
        for _ in range(11):
            streams = log.read_text().count("mysql source: ") if log.exists() else 0
            runner = Runner(tmp_path, "kill", log)
            runners.append(runner)
            if rng.random() < 0.2:  # during start-up (loading plugins, connecting)
                time.sleep(rng.uniform(0.1, 3.0))
            else:  # while streaming
                wait_until(partial(_streaming, runner, streams), 60, "the runner to stream")
                if rng.random() < 0.5:  # after at least one checkpoint of this run, so that
                    # the runs make progress even on a loaded machine
                    before = read_checkpoint(checkpoint)
                    wait_until(lambda old=before, proc=runner: read_checkpoint(checkpoint) != old
                               or not proc.alive(), 30, "the runner to checkpoint")
                time.sleep(rng.uniform(0.1, 2.0))
            assert runner.alive(), f"seed {seed}: the runner exited:\n{runner.stderr()[-3000:]}"
            runner.kill()
            kills += 1
            positions.append(read_checkpoint(checkpoint))
    finally:
        workload.stop()
    assert kills >= 10
    assert workload.commits > 200, workload.commits
    assert workload.next_id < KEY_SPACE
    # The runs between kills made progress (not just the final catch-up below).
    distinct = {str(p) for p in positions}
    assert len(distinct) >= 4, f"seed {seed}: checkpoint barely moved: {positions}"

    final = run_meepo("run", "kill", "--once", cwd=tmp_path, timeout=180)
    assert final.returncode == 0, final.stderr
    table = assert_replicas_equal_table(
        mysql_db, es_server.url, f"{es_prefix}_items", pg_url, f"seed {seed}"
    )
    assert len(table) > 100
    # Every key of a row updated or deleted is invalidated ...
    stale = present_keys(redis_db, workload.touched)
    assert stale == set(), f"seed {seed}: {len(stale)} keys not invalidated: {sorted(stale)[:10]}"
    # ... and only the keys of changed rows: untouched initial rows and unused ids keep theirs.
    untouched = set(range(1, 101)) - workload.touched
    unused = set(range(workload.next_id, KEY_SPACE))
    assert present_keys(redis_db, untouched | unused) == untouched | unused
    dead = tmp_path / ".meepo" / "kill.dead.jsonl"
    assert not dead.exists() or dead.read_text() == ""


# -- sink outages ----------------------------------------------------------------------


class PersistentRedisServer(RedisServer):
    """A private Redis that keeps its data across stop/start (AOF), so seeded cache keys
    survive the outage and the test can see which ones were invalidated after it."""

    def command(self) -> Sequence[str]:
        argv = list(super().command())
        at = argv.index("--appendonly")
        argv[at + 1] = "yes"
        return [*argv, "--appendfsync", "always"]


RETRY_LINE = re.compile(
    r"WARNING meepo\.delivery: (?P<label>sinks\[\d\] [\w-]+) failed \(attempt (?P<attempt>\d+) "
    r"of \d+\): (?P<error>.*); retrying in (?P<delay>[\d.]+)s$"
)


def retry_lines(stderr: str, sink: str) -> list[re.Match[str]]:
    found = [RETRY_LINE.search(line) for line in stderr.splitlines()]
    return [m for m in found if m is not None and m["label"] == sink]


def hold_outage(checkpoint: Path, runner: Runner, sink: str, seconds: float, already: int) -> Any:
    """While a sink is down: wait for the runner's first new retry line, then check the
    checkpoint stays put for the rest of ``seconds``; returns the frozen position."""
    began = time.monotonic()
    wait_until(
        lambda: len(retry_lines(runner.stderr(), sink)) > already, 20, f"a retry line for {sink}"
    )
    frozen = read_checkpoint(checkpoint)
    while time.monotonic() - began < seconds:
        assert runner.alive(), runner.stderr()[-3000:]
        assert read_checkpoint(checkpoint) == frozen, f"checkpoint advanced while {sink} was down"
        time.sleep(0.5)
    return frozen


def assert_backoff(lines: list[re.Match[str]], sink: str) -> None:
    """Attempts count up from 1 and the delays grow (0.2, 0.4, 0.8, capped at 1.0)."""
    assert len(lines) >= 4, f"only {len(lines)} retries of {sink} logged"
    attempts = [int(m["attempt"]) for m in lines]
    delays = [float(m["delay"]) for m in lines]
    assert attempts[:4] == [1, 2, 3, 4], attempts
    assert delays[:4] == [0.2, 0.4, 0.8, 1.0], delays
    assert all(d <= 1.0 for d in delays)


@pytest.mark.slow
def test_redis_then_es_outage_retries_keeps_checkpoint_and_loses_nothing(
    mysql_db: Any,
    pg_url: str,
    tmp_path: Path,
    runners: list[Runner],
) -> None:
    seed = pick_seed()
    with (
        PersistentRedisServer(tmp_path / "redis") as cache,
        ElasticsearchServer(tmp_path / "es") as search,
    ):
        mysql_db.execute(ITEMS_DDL)
        start = binlog_end(mysql_db.server)
        seed_keys(cache.url, range(1, KEY_SPACE))
        config_dir = tmp_path / "pipeline"
        config_dir.mkdir()
        write_config(
            config_dir,
            {
                "outage": {
                    "source": source(mysql_db.server, mysql_db.name, start),
                    "sinks": sinks(
                        mysql_db.name,
                        cache.url,
                        search.url,
                        pg_url,
                        "out",
                        request_timeout=5,
                    ),
                    "checkpoint": "file:.meepo/outage.json",
                    "batch_size": 20,
                    "batch_wait": 0.05,
                    "max_retries": 100,
                    "retry_backoff": 0.2,
                    "retry_backoff_max": 1.0,
                }
            },
        )
        checkpoint = config_dir / ".meepo" / "outage.json"
        workload = Workload(mysql_db, seed, pause=0.05)
        workload.start()
        runner = Runner(config_dir, "outage", tmp_path / "outage.log")
        runners.append(runner)
        try:
            wait_until(
                lambda: len(es_docs(search.url, "out_items")) > 10, 60, "the pipeline to stream"
            )

            cache.stop()
            frozen = hold_outage(checkpoint, runner, "sinks[0] redis", 10, 0)
            cache.start()
            wait_until(
                lambda: read_checkpoint(checkpoint) != frozen,
                30,
                "the checkpoint to move after Redis came back",
            )

            search.stop()
            es_before = len(retry_lines(runner.stderr(), "sinks[1] elasticsearch"))
            frozen = hold_outage(checkpoint, runner, "sinks[1] elasticsearch", 10, es_before)
            search.start()
            wait_until(
                lambda: read_checkpoint(checkpoint) != frozen,
                30,
                "the checkpoint to move after Elasticsearch came back",
            )
            time.sleep(1)
        finally:
            workload.stop()

        def caught_up() -> bool:
            table = table_rows(mysql_db)
            return es_docs(search.url, "out_items") == table and pg_rows(pg_url) == table

        wait_until(caught_up, 90, "the sinks to catch up with the table")
        assert runner.terminate() == 0, runner.stderr()[-3000:]
        stderr = runner.stderr()
        assert "Traceback" not in stderr
        assert_backoff(retry_lines(stderr, "sinks[0] redis"), "redis")
        es_lines = retry_lines(stderr, "sinks[1] elasticsearch")
        assert_backoff(es_lines, "elasticsearch")
        assert any("ConnectionError" in m["error"] for m in retry_lines(stderr, "sinks[0] redis"))
        assert_replicas_equal_table(mysql_db, search.url, "out_items", pg_url, f"seed {seed}")
        # Every row inserted, updated or deleted had its key invalidated, including the
        # changes made while Redis was down; keys of ids never used are still there.
        used = set(range(1, workload.next_id))
        assert present_keys(cache.url, used) == set(), f"seed {seed}"
        unused = set(range(workload.next_id, KEY_SPACE))
        assert present_keys(cache.url, unused) == unused
        assert workload.commits > 100


# -- source restart --------------------------------------------------------------------


@pytest.mark.slow
def test_mariadb_restart_mid_stream_reconnects_and_loses_nothing(
    scratch_mariadb: Any,
    redis_db: str,
    es_server: Any,
    es_prefix: str,
    pg_url: str,
    tmp_path: Path,
    runners: list[Runner],
) -> None:
    seed = pick_seed()
    scratch_mariadb.start()
    db = new_database(scratch_mariadb)
    db.execute(ITEMS_DDL)
    start = binlog_end(scratch_mariadb)
    seed_keys(redis_db, range(1, KEY_SPACE))
    write_config(
        tmp_path,
        {
            "restart": {
                "source": source(scratch_mariadb, db.name, start),
                "sinks": sinks(db.name, redis_db, es_server.url, pg_url, es_prefix),
                "checkpoint": "file:.meepo/restart.json",
                "batch_size": 20,
                "batch_wait": 0.05,
            }
        },
    )
    index = f"{es_prefix}_items"
    workload = Workload(db, seed, pause=0.02, survive_restarts=True)
    workload.start()
    runner = Runner(tmp_path, "restart", tmp_path / "restart.log")
    runners.append(runner)
    try:
        wait_until(lambda: len(es_docs(es_server.url, index)) > 10, 60, "the pipeline to stream")
        before = workload.commits
        scratch_mariadb.restart()
        wait_until(lambda: workload.commits > before + 50, 30, "the workload to write again")
    finally:
        workload.stop()
    assert workload.reconnects >= 1, "the workload never saw the restart"

    def caught_up() -> bool:
        table = table_rows(db)
        return es_docs(es_server.url, index) == table and pg_rows(pg_url) == table

    wait_until(caught_up, 90, "the sinks to catch up after the restart")
    assert runner.alive(), runner.stderr()[-3000:]
    assert runner.terminate() == 0, runner.stderr()[-3000:]
    stderr = runner.stderr()
    assert "Traceback" not in stderr
    assert re.search(r"binlog stream from 127\.0\.0\.1:\d+ lost .*; reconnecting in", stderr), (
        stderr[-3000:]
    )
    assert_replicas_equal_table(db, es_server.url, index, pg_url, f"seed {seed}")
    stale = present_keys(redis_db, workload.touched)
    assert stale == set(), f"seed {seed}: keys not invalidated: {sorted(stale)[:10]}"
    scratch_mariadb.execute(f"DROP DATABASE `{db.name}`", database=None)
