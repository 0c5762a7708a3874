"""XA transactions, partial row images from sessions with binlog_row_image = MINIMAL or
NOBLOB, and the primary-key column a ``columns`` rule must not hide."""

from __future__ import annotations

from typing import Any

import pytest

from meepo_core import SourceError


def test_xa_transactions_are_delivered_at_prepare(harness: Any, caplog: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.end()
    _on_one_connection(
        harness,
        "XA START 'x1'", "INSERT INTO t VALUES (1)", "XA END 'x1'", "XA PREPARE 'x1'",
        "XA COMMIT 'x1'",
        "XA START 'x2'", "INSERT INTO t VALUES (2)", "XA END 'x2'", "XA PREPARE 'x2'",
        "XA ROLLBACK 'x2'",
        "XA START 'x3'", "INSERT INTO t VALUES (3)", "XA END 'x3'", "XA COMMIT 'x3' ONE PHASE",
    )
    source = harness.source(start=start)
    context = harness.context()
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        batches = list(source.stream(None, context, once=True))
    events = [e for b in batches for e in b.events]
    assert [e.pk for e in events] == [1, 2, 3]
    assert len({e.txid for e in events}) == 3
    assert context.metrics.failures[("source", "xa_rolled_back")] == 1
    assert any("XA ROLLBACK" in r.getMessage() and "backfill" in r.getMessage()
               for r in caplog.records)
    assert batches[-1].position["gtid"] == harness.gtid()


def _on_one_connection(harness: Any, *statements: str) -> None:
    with harness.db.connect(autocommit=True) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


@pytest.mark.parametrize("image", ["MINIMAL", "NOBLOB"])
def test_partial_row_images_leave_unlogged_columns_out(harness: Any, image: str) -> None:
    """The server refuses nothing per session: preflight checks the global setting, and
    rows a session logged with a partial image are decoded with the missing columns absent
    (never None)."""
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT, b TEXT, c VARCHAR(5))")
    start = harness.end()
    harness.transaction(
        f"SET SESSION binlog_row_image = '{image}'",
        "INSERT INTO t VALUES (1, 10, 'blob', 'x')",
        "UPDATE t SET a = 11 WHERE id = 1",
        "DELETE FROM t WHERE id = 1",
    )
    events, _ = harness.drain(None, start=start)
    assert [(e.action, e.pk) for e in events] == [("write", 1), ("update", 1), ("delete", 1)]
    write, update, delete = events
    if image == "MINIMAL":
        assert write.after == {"id": 1, "a": 10, "b": "blob", "c": "x"}  # what was set
        assert update.before == {"id": 1} and update.after == {"a": 11}
        assert delete.before == {"id": 1}
    else:  # NOBLOB: every column but the unchanged TEXT
        assert write.after == {"id": 1, "a": 10, "b": "blob", "c": "x"}
        assert update.before == {"id": 1, "a": 10, "c": "x"}
        assert update.after == {"id": 1, "a": 11, "c": "x"}
        assert delete.before == {"id": 1, "a": 11, "c": "x"}


def test_a_rule_hiding_a_primary_key_column_is_refused(harness: Any) -> None:
    db = harness.db.name
    harness.execute("CREATE TABLE users (email VARCHAR(40) PRIMARY KEY, name VARCHAR(10))")
    rule = {f"{db}.user*": {"exclude": ["email"]}}
    message = (f"source.columns.\"{db}.user*\" hides 'email', a primary-key column of "
               f"{db}.users; every event carries its key in pk, so a key column cannot be "
               "hidden: keep the column, or leave the table out with exclude_tables")
    assert harness.source(columns=rule).check() == [message]
    # A table created after the check is refused when its first row arrives.
    start = harness.end()
    harness.execute("CREATE TABLE user_log (email VARCHAR(40) PRIMARY KEY)",
                    "INSERT INTO user_log VALUES ('a@b')")
    with pytest.raises(SourceError, match=r"source.columns.\"[^\"]+\" hides 'email', a "
                                          r"primary-key column of [^ ]+\.user_log;"):
        harness.drain(None, start=start, columns=rule)
