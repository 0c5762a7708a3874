"""PostgreSQL restarted mid-stream: the source reconnects and resumes from the slot."""

from __future__ import annotations

from typing import Any


def test_server_restart_mid_stream_resumes_from_the_slot(
    harness: Any, follow: Any, caplog: Any
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.begin()
    source = harness.source()
    follower = follow(source, harness.context(), start)
    with caplog.at_level("WARNING", logger="meepo.postgres"):
        harness.execute("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)")
        follower.wait_for(2)
        harness.server.restart()
        harness.execute("INSERT INTO t VALUES (3)", "INSERT INTO t SELECT generate_series(4, 10)")
        events = follower.wait_for(10, timeout=60)
    follower.stop()
    assert [e.pk for e in events] == list(range(1, 11))
    assert any("reconnecting in" in r.getMessage() for r in caplog.records)
    # everything was acknowledged on the new connection
    assert harness.confirmed_lsn() is not None
    again, _ = harness.drain(follower.position)
    assert again == []
