"""Snapshots of a MariaDB table into a PostgreSQL replica and an Elasticsearch index while
four writers keep inserting, updating and deleting: the initial copy (with a stream that
starts seconds late), a snapshot asked of a running pipeline, and SIGKILLs in the middle of
a snapshot. After the writers stop and the pipeline catches up, the replica and the index
equal the table row for row."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from meepo_e2e_kit import (
    ITEMS_DDL,
    Rows,
    Workload,
    es_docs,
    pg_rows,
    require_plugins,
    table_rows,
    wait_until,
)
from meepo_testkit.proxy import TcpProxy

from meepo_core.testing import meepo_command, run_meepo, write_config

require_plugins()
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WRITERS = 4


def seed(db: Any, rows: int) -> None:
    """``rows`` rows written before the pipeline exists: only a snapshot brings them."""
    db.execute(ITEMS_DDL)
    with db.connect(autocommit=True) as conn, conn.cursor() as cur:
        for first in range(1, rows + 1, 5000):
            values = [(i, f"s{i}", i % 100) for i in range(first, min(first + 5000, rows + 1))]
            cur.executemany("INSERT INTO items VALUES (%s, %s, %s)", values)


#: The mysql source with a late stream: its binlog reader and the stream's queries connect
#: through ``stream_dsn`` (a proxy holding each new connection), the snapshot reads go to
#: ``dsn`` directly, as when only the replication connection is slow.
LATE_STREAM_PLUGIN = '''
from meepo_core import Options, hookimpl
from meepo_mysql import MySQLSource
from meepo_mysql.config import parse_settings
from meepo_mysql.snapshot import MySQLSnapshots


class LateStream(MySQLSource):
    @classmethod
    def from_options(cls, options):
        data = dict(options.data)
        stream_dsn = data.pop("stream_dsn")
        source = cls(parse_settings(Options({**data, "dsn": stream_dsn}, options.path,
                                            options.base_dir)))
        direct = parse_settings(Options(data, options.path, options.base_dir))
        source.snapshots = MySQLSnapshots(direct, source.rendezvous)
        return source


@hookimpl
def meepo_register_sources(register):
    register("mysql-late-stream", LateStream)
'''


def pipeline(db: Any, es_url: str, pg_url: str, prefix: str,
             source: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "source": {"type": "mysql", "dsn": db.server.dsn, "tables": [f"{db.name}.items"],
                   "heartbeat": 1, **(source or {})},
        "sinks": [
            {"type": "elasticsearch", "hosts": [es_url], "index": prefix + "_{table}"},
            {"type": "sql", "url": pg_url},
        ],
        "batch_wait": 0.05,
        **extra,
    }


def writers(db: Any, rows: int, seed_value: int) -> list[Workload]:
    """Four workloads over the seeded ids and their own new ids.

    Paced so that the sinks keep up: unpaced (5 ms between transactions) they outran the
    test Elasticsearch server (noida-db at 100 % CPU, meepo at 8 %: the pipeline fell from
    7,100 to 500 events/s within 5 minutes), the stream fell behind without bound, and each
    chunk, delivered when the stream reaches it, waited longer and longer."""
    started = []
    for index in range(WRITERS):
        workload = Workload(db, seed_value + index, first_id=rows + 1 + index * 1_000_000,
                            pause=0.05)
        workload.live = list(range(1 + index, rows + 1, WRITERS))
        workload.start()
        started.append(workload)
    return started


def snapshot_state(directory: Path, name: str) -> dict[str, Any]:
    path = directory / ".meepo" / f"{name}.json"
    try:
        return json.loads(path.read_text()).get("snapshot") or {}
    except (FileNotFoundError, ValueError):
        return {}


def assert_converged(db: Any, es_url: str, pg_url: str, index: str, runner: Any) -> None:
    """Wait until the replica and the index equal the table (the pipeline catches up)."""
    table: Rows = table_rows(db)
    wait_until(lambda: pg_rows(pg_url) == table and es_docs(es_url, index) == table, 240,
               "the replica and the index to equal the table")
    assert len(table) > 0


class Background:
    """``meepo run NAME`` in the background, stderr to ``log``."""

    def __init__(self, cwd: Path, name: str, log: Path) -> None:
        with log.open("ab") as handle:
            self.proc = subprocess.Popen(meepo_command("run", name), cwd=cwd, stderr=handle)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def test_initial_snapshot_of_100k_rows_under_four_writers(
    mysql_db: Any, es_server: Any, es_prefix: str, pg_url: str, tmp_path: Path
) -> None:
    seed(mysql_db, 100_000)
    # The stream's connections wait 3 s each, so it fixes its start (latest) seconds after
    # the snapshot could read its first chunk.
    server = mysql_db.server
    proxy = TcpProxy(server.host, server.port)
    proxy.delay_connect = 3.0
    late = {"type": "mysql-late-stream",
            "stream_dsn": f"mysql://{server.user}:{server.password}@127.0.0.1:{proxy.port}"}
    (tmp_path / "late_stream.py").write_text(LATE_STREAM_PLUGIN)
    write_config(tmp_path, {"copy": pipeline(mysql_db, es_server.url, pg_url, es_prefix,
                                             source=late, snapshot="initial")},
                 plugins=["late_stream"])
    workloads = writers(mysql_db, 100_000, 1)
    runner = Background(tmp_path, "copy", tmp_path / "run.log")
    try:
        wait_until(lambda: bool(snapshot_state(tmp_path, "copy").get("done"))
                   or not runner.alive(), 600, "the initial snapshot")
        assert runner.alive(), (tmp_path / "run.log").read_text()[-3000:]
    finally:
        for workload in workloads:
            workload.stop()
    assert sum(w.commits for w in workloads) > 100
    try:
        assert_converged(mysql_db, es_server.url, pg_url, f"{es_prefix}_items", runner)
    finally:
        assert runner.stop() == 0, (tmp_path / "run.log").read_text()[-3000:]
        proxy.close()
    done = snapshot_state(tmp_path, "copy")["done"][0]
    assert done["rows"] >= 100_000 * 0.9 and done["table"] == f"{mysql_db.name}.items"


def test_snapshot_asked_of_a_running_pipeline_under_four_writers(
    mysql_db: Any, es_server: Any, es_prefix: str, pg_url: str, tmp_path: Path
) -> None:
    seed(mysql_db, 20_000)
    write_config(tmp_path, {"live": pipeline(mysql_db, es_server.url, pg_url, es_prefix)})
    runner = Background(tmp_path, "live", tmp_path / "run.log")
    workloads = writers(mysql_db, 20_000, 7)
    try:
        wait_until(lambda: "mysql source:" in (tmp_path / "run.log").read_text(), 60,
                   "the pipeline to stream")
        asked = run_meepo("snapshot", "live", "--table", f"{mysql_db.name}.items",
                          cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr
        wait_until(lambda: bool(snapshot_state(tmp_path, "live").get("done"))
                   or not runner.alive(), 300, "the snapshot")
        assert runner.alive(), (tmp_path / "run.log").read_text()[-3000:]
    finally:
        for workload in workloads:
            workload.stop()
    try:
        assert_converged(mysql_db, es_server.url, pg_url, f"{es_prefix}_items", runner)
    finally:
        assert runner.stop() == 0, (tmp_path / "run.log").read_text()[-3000:]
    status = run_meepo("snapshot", "live", "--status", cwd=tmp_path)
    assert "done" in status.stdout and f"{mysql_db.name}.items" in status.stdout


def test_sigkill_during_a_snapshot_resumes_from_the_last_finished_chunk(
    mysql_db: Any, es_server: Any, es_prefix: str, pg_url: str, tmp_path: Path
) -> None:
    seed(mysql_db, 30_000)
    write_config(tmp_path, {"kill": pipeline(mysql_db, es_server.url, pg_url, es_prefix,
                                             snapshot="initial", snapshot_chunk_size=500)})
    rng = random.Random(3)
    progress: list[int] = []
    workloads = writers(mysql_db, 30_000, 21)
    try:
        for _ in range(5):
            runner = Background(tmp_path, "kill", tmp_path / "runs.log")
            wait_until(lambda run=runner: bool(snapshot_state(tmp_path, "kill"))
                       or not run.alive(), 120, "a first checkpoint")
            time.sleep(rng.uniform(0.5, 3.0))
            assert runner.alive(), (tmp_path / "runs.log").read_text()[-3000:]
            runner.proc.kill()
            runner.proc.wait(10)
            jobs = snapshot_state(tmp_path, "kill").get("jobs") or []
            progress.append(jobs[0]["rows"] if jobs else 30_000)
    finally:
        for workload in workloads:
            workload.stop()
    assert progress == sorted(progress), progress  # never back to an earlier chunk
    assert progress[-1] > 0
    final = Background(tmp_path, "kill", tmp_path / "runs.log")
    try:
        wait_until(lambda: not snapshot_state(tmp_path, "kill").get("jobs"), 300,
                   "the snapshot to finish")
        assert_converged(mysql_db, es_server.url, pg_url, f"{es_prefix}_items", final)
    finally:
        assert final.stop() == 0, (tmp_path / "runs.log").read_text()[-3000:]
