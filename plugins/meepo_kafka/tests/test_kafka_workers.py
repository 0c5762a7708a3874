"""Scale-out through Kafka with the real CLI: MariaDB -> ``mysql`` source -> ``kafka`` sink,
and two ``meepo run worker`` processes (one pipeline, one project directory, so one shared
checkpoint file) with the ``kafka`` source -> PostgreSQL ``sql`` replica, while a random
workload commits. The second worker joins mid-stream; then the first one is stopped
mid-stream (SIGKILL against a real cluster, SIGTERM against noida-db) and the second takes
over its partitions. The replica must equal the table, nothing may be lost, and the changes
of every key must be applied in order (a replay may repeat earlier changes, never skip one).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

import pytest

from meepo_core.testing import meepo_command, write_config

from .conftest import NOIDA_NO_SESSION_EXPIRY, is_real_cluster, read_topic, wait_for

pytestmark = pytest.mark.integration
pytest.importorskip("meepo_mysql", reason="needs meepo-mysql (the integration suite)")
pytest.importorskip("meepo_sqlalchemy", reason="needs meepo-sqlalchemy (the integration suite)")
sys.path.insert(0, str(Path(__file__).parents[3] / "tests" / "e2e"))
from meepo_e2e_kit import (  # noqa: E402
    ITEMS_DDL,
    PG_ITEMS_DDL,
    Workload,
    binlog_end,
    pg_rows,
    table_rows,
)

PARTITIONS = 4


@pytest.fixture
def pg_url(postgres_db_url: str) -> str:
    """A fresh PostgreSQL database holding an empty ``items`` replica table."""
    import psycopg  # not installed where only the kafka plugin's own tests run

    with psycopg.connect(postgres_db_url.replace("+psycopg", "")) as conn:
        conn.execute(PG_ITEMS_DDL)
    return postgres_db_url


class Process:
    """``meepo run NAME`` in the background, its output in ``log``."""

    def __init__(self, cwd: Path, name: str, log: Path) -> None:
        self.log = log
        self._handle: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen(meepo_command("run", name), cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=self._handle)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._handle.close()
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def applied(tmp_path: Path) -> dict[int, list[dict[str, Any]]]:
    """The record sink's lines by worker pid (a line torn by SIGKILL is left out)."""
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for path in tmp_path.glob("applied-*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            out[record["pid"]].append(record)
    return out


@pytest.mark.parametrize("stop_with", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_two_workers_share_partitions_and_one_takes_over_when_the_other_stops(
    stop_with: signal.Signals, kafka_server: Any, mysql_db: Any, mariadb: Any,
    pg_url: str, tmp_path: Path, make_topic: Any
) -> None:
    real = is_real_cluster(kafka_server)
    if stop_with is signal.SIGKILL and not real:
        pytest.skip(NOIDA_NO_SESSION_EXPIRY)
    bootstrap = kafka_server.bootstrap
    mysql_db.execute(ITEMS_DDL)
    topic = make_topic(PARTITIONS, name=f"{mysql_db.name}.items")
    shutil.copy(Path(__file__).with_name("recorder_plugin.py"), tmp_path)
    write_config(tmp_path, {
        "publish": {
            "source": {"type": "mysql", "dsn": mariadb.dsn, "tables": [f"{mysql_db.name}.items"],
                       "start": binlog_end(mariadb), "heartbeat": 1},
            "sinks": [{"type": "kafka", "bootstrap_servers": bootstrap}],
            "status_interval": 0,
        },
        "worker": {
            "source": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic],
                       "group": f"g-{mysql_db.name}",
                       "config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}},
            "sinks": [{"type": "sql", "url": pg_url},
                      {"type": "record", "path": "applied-{pid}.jsonl"}],
            "batch_size": 50, "batch_wait": 0.05, "checkpoint_interval": 0.2,
            "status_interval": 0,
        },
    }, plugins=["recorder_plugin"])
    publisher = Process(tmp_path, "publish", tmp_path / "publish.log")
    first = Process(tmp_path, "worker", tmp_path / "worker-1.log")
    workload = Workload(mysql_db, seed=12, pause=0.005)
    second: Process | None = None
    try:
        workload.start()
        wait_for(lambda: bool(applied(tmp_path)), 60, "the first worker to apply changes")
        second = Process(tmp_path, "worker", tmp_path / "worker-2.log")  # joins mid-stream
        second_pid = second.proc.pid
        wait_for(lambda: second_pid in applied(tmp_path), 60, "the second worker's share")
        time.sleep(1.0)
        stopped_at = time.time()
        code = first.stop(stop_with)
        if stop_with is signal.SIGTERM:
            assert code == 0, first.output()[-3000:]
        time.sleep(2.0)  # the workload goes on; the second worker takes everything
        workload.stop()
        expected = table_rows(mysql_db)
        wait_for(lambda: pg_rows(pg_url) == expected, 120, "the replica to equal the table")
    finally:
        workload.stop_event.set()
        if second is not None:
            assert second.stop() == 0, second.output()[-3000:]
        first.stop(signal.SIGKILL)
        publisher.stop()
    assert pg_rows(pg_url) == table_rows(mysql_db)

    published = [json.loads(r.value or b"null") for r in read_topic(bootstrap, topic)]
    partition_of = {json.loads(r.key or b"")["id"]: r.partition
                    for r in read_topic(bootstrap, topic)}
    changes: dict[Any, list[int]] = defaultdict(list)  # per key, in publish order
    for event in published:
        if event is not None:
            changes[event["pk"]].append(event["sequence"])
    by_worker = applied(tmp_path)
    assert set(by_worker) == {first.proc.pid, second_pid}
    everything = [r for records in by_worker.values() for r in records]

    # nothing lost: every published change was applied by a worker
    assert {(r["pk"], r["seq"]) for r in everything} == {
        (pk, seq) for pk, sequences in changes.items() for seq in sequences}
    # per key, in the order applied: the next change or a replay, never a skip; ends last
    reached: dict[Any, int] = defaultdict(lambda: -1)
    for record in sorted(everything, key=lambda r: r["t"]):
        index = changes[record["pk"]].index(record["seq"])
        assert index <= reached[record["pk"]] + 1, record
        reached[record["pk"]] = index
    assert all(reached[pk] == len(seqs) - 1 for pk, seqs in changes.items())
    # the second worker took over every partition once the first had stopped
    late = {partition_of[r["pk"]] for r in by_worker[second_pid] if r["t"] > stopped_at}
    assert late == set(range(PARTITIONS))
    if real and stop_with is signal.SIGTERM:
        # with Kafka's commit-on-revoke, a graceful stop or join replays nothing
        assert len(everything) == len({(r["pk"], r["seq"]) for r in everything})
    # the shared checkpoint file holds one worker's last applied offsets (informational)
    checkpoint = json.loads((tmp_path / ".meepo" / "worker.json").read_text())
    assert checkpoint["position"]["group"] == f"g-{mysql_db.name}"
