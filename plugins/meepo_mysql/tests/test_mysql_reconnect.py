"""Connection loss, server restarts, stalls: the source reconnects with backoff from the last
transaction boundary it delivered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from meepo_testkit.proxy import TcpProxy


@pytest.fixture
def proxy(mysql_db: Any) -> Iterator[TcpProxy]:
    p = TcpProxy(mysql_db.server.host, mysql_db.server.port)
    yield p
    p.close()


def _kill_dump_threads(server: Any) -> int:
    killed = 0
    for row in server.execute("SHOW PROCESSLIST", database=None):
        if str(row[4]).startswith("Binlog Dump"):
            server.execute(f"KILL {row[0]}", database=None)
            killed += 1
    return killed


def _reconnect_logs(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()]


def test_killed_connection_reconnects_from_the_last_boundary(
    harness: Any, follow: Any, caplog: Any
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    follower = follow(harness.source(start=harness.end()), harness.context(), None)
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        for i in range(1, 4):
            harness.execute(f"INSERT INTO t VALUES ({i})")
        follower.wait_for(3)
        delivered = follower.position
        assert _kill_dump_threads(harness.server) == 1
        for i in range(4, 7):
            harness.execute(f"INSERT INTO t VALUES ({i})")
        events = follower.wait_for(6)
    assert [e.pk for e in events] == [1, 2, 3, 4, 5, 6]  # nothing lost, nothing repeated
    logs = _reconnect_logs(caplog)
    assert logs and f"'pos': {delivered['pos']}" in logs[0]
    follower.stop()


def test_server_restart_reconnects_with_backoff(harness: Any, follow: Any, caplog: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    follower = follow(harness.source(start=harness.end()), harness.context(), None)
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        harness.execute("INSERT INTO t VALUES (1)")
        follower.wait_for(1)
        harness.server.restart()
        harness.execute("INSERT INTO t VALUES (2)")
        events = follower.wait_for(2, timeout=60)
    assert [e.pk for e in events] == [1, 2]
    logs = _reconnect_logs(caplog)
    assert len(logs) >= 1
    delays = [float(m.split("reconnecting in ")[1].split("s")[0]) for m in logs]
    assert delays == sorted(delays)  # exponential backoff while the server is down
    follower.stop()


def test_heartbeat_detects_a_stalled_stream(
    harness: Any, follow: Any, proxy: TcpProxy, caplog: Any
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    dsn = f"mysql://meepo:meepo@127.0.0.1:{proxy.port}"
    source = harness.source(start=harness.end(), dsn=dsn, heartbeat=0.4)
    follower = follow(source, harness.context(), None)
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        harness.execute("INSERT INTO t VALUES (1)")
        follower.wait_for(1)
        proxy.stall()  # the TCP connection stays open but nothing flows any more
        deadline = time.monotonic() + 20
        while not _reconnect_logs(caplog):  # missing heartbeats alone reveal the stall
            assert time.monotonic() < deadline, "the stalled stream was never noticed"
            time.sleep(0.05)
        harness.execute("INSERT INTO t VALUES (2)")
        events = follower.wait_for(2, timeout=20)
    assert [e.pk for e in events] == [1, 2]
    assert "nothing received" in _reconnect_logs(caplog)[0]


def test_connection_cut_mid_transaction_redelivers_the_whole_transaction(
    harness: Any, follow: Any, proxy: TcpProxy
) -> None:
    rows = 20_000
    harness.execute(
        "CREATE TABLE big (id INT PRIMARY KEY, v INT)",
        f"INSERT INTO big SELECT seq, 0 FROM seq_1_to_{rows}",
    )
    dsn = f"mysql://meepo:meepo@127.0.0.1:{proxy.port}"
    start = harness.end()
    harness.execute("UPDATE big SET v = 1")
    harness.execute("INSERT INTO big VALUES (0, 0)")
    proxy.rate = 1_000_000  # slow enough that the transaction is still in flight at the cut
    follower = follow(harness.source(start=start, dsn=dsn), harness.context(batch_size=100), None)
    follower.wait_for(300)
    proxy.cut()
    proxy.rate = None
    deadline = time.monotonic() + 60
    while not any(e.action == "write" for e in follower.events):  # the next transaction
        assert time.monotonic() < deadline, "the transaction after the big one never came"
        assert follower.error is None, follower.error
        time.sleep(0.05)
    events = follower.events
    updates = [e.pk for e in events if e.action == "update"]
    assert set(updates) == set(range(1, rows + 1))  # every row of the transaction
    assert len(updates) > rows  # its first part came twice: at-least-once
    assert events[-1].pk == 0
    with follower._lock:
        batches = list(follower.batches)
    seen = 0
    for batch in batches:
        seen += len(batch)
        if batch.position is not None and seen > 0:
            assert seen >= rows  # a position only once the big transaction completed
    follower.stop()
