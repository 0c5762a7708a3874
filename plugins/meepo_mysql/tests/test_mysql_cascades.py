"""Foreign-key cascades change child rows without row events: meepo warns at check and
start, and logs and counts each parent key change or delete that cascades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meepo_core.testing import run_meepo, write_config


def _schema(harness: Any) -> None:
    harness.execute(
        "CREATE TABLE store (id INT PRIMARY KEY, name VARCHAR(10))",
        "CREATE TABLE customer (id INT PRIMARY KEY, store_id INT, "
        "CONSTRAINT fk_customer_store FOREIGN KEY (store_id) REFERENCES store (id) "
        "ON UPDATE CASCADE ON DELETE SET NULL)",
        "CREATE TABLE audit (id INT PRIMARY KEY, store_id INT, "
        "CONSTRAINT fk_audit_store FOREIGN KEY (store_id) REFERENCES store (id))",  # RESTRICT
    )


def _cascade_lines(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if "fk_" in r.getMessage()]


def test_check_and_start_warn_about_cascading_foreign_keys(harness: Any, caplog: Any) -> None:
    _schema(harness)
    db = harness.db.name
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        assert harness.source(tables=[f"{db}.customer", f"{db}.audit"]).check() == []
    lines = _cascade_lines(caplog)
    assert len(lines) == 1, lines  # the RESTRICT constraint of audit is no problem
    assert lines[0].startswith(
        f"{db}.customer: foreign key fk_customer_store (store_id) -> {db}.store (id) "
        "ON UPDATE CASCADE ON DELETE SET NULL: the server changes")
    caplog.clear()
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        harness.source(tables=[f"{db}.store"]).check()  # the child is not followed
        harness.drain(None, tables=[f"{db}.customer"], start=harness.end())
    assert len(_cascade_lines(caplog)) == 1  # at the start of the stream


def test_parent_key_changes_and_deletes_that_cascade_are_logged_and_counted(
    harness: Any, caplog: Any
) -> None:
    _schema(harness)
    db = harness.db.name
    harness.execute("INSERT INTO store VALUES (1, 'a'), (2, 'b'), (3, 'c')",
                    "INSERT INTO customer VALUES (10, 1), (11, 2), (12, 2), (13, 3)")
    start = harness.end()
    harness.execute(
        "UPDATE store SET name = 'bb' WHERE id = 2",  # no key change: nothing cascades
        "UPDATE store SET id = 99 WHERE id = 2",  # customers 11 and 12 change unseen
        "DELETE FROM store WHERE id = 3",  # customer 13 gets store_id NULL unseen
    )
    source = harness.source(tables=[f"{db}.customer"], start=start)  # the parent unfollowed
    context = harness.context()
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        events = [e for b in source.stream(None, context, once=True) for e in b.events]
    assert events == []  # the binlog holds no customer row
    assert context.metrics.failures[("source", "fk_cascade_not_logged")] == 2
    lines = [line for line in _cascade_lines(caplog) if "cascades" in line]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"key change on {db}.store {{'id': 2}} at binlog.")
    assert f"cascades (ON UPDATE CASCADE) to {db}.customer through foreign key " \
           "fk_customer_store" in lines[0]
    assert lines[1].startswith(f"delete on {db}.store {{'id': 3}} at ")
    assert "(ON DELETE SET NULL)" in lines[1]
    rows = harness.server.execute(f"SELECT id, store_id FROM `{db}`.customer ORDER BY id",
                                  database=None)
    assert [tuple(r) for r in rows] == [(10, 1), (11, 99), (12, 99), (13, None)]


def test_meepo_check_prints_the_warning(harness: Any, tmp_path: Path) -> None:
    _schema(harness)
    source = {"type": "mysql", "dsn": harness.server.dsn, "tables": [f"{harness.db.name}.*"]}
    write_config(tmp_path, {"shop": {"source": source, "sinks": [{"type": "null"}]}})
    result = run_meepo("check", "shop", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "fk_customer_store" in line]
    assert len(warnings) == 1 and " WARNING meepo.mysql: " in warnings[0]
    assert "backfill the child table" in warnings[0]


def test_resnapshot_brings_the_rows_a_cascade_changed_into_the_sinks(
    harness: Any, tmp_path: Path
) -> None:
    import json

    _schema(harness)
    db = harness.db.name
    harness.execute("INSERT INTO store VALUES (1, 'a'), (2, 'b')",
                    "INSERT INTO customer VALUES (10, 1), (11, 2), (12, 2), (13, NULL)")
    write_config(tmp_path, {"p": {
        "source": {**harness.options(), "tables": [f"{db}.store", f"{db}.customer"],
                   "cascades": "resnapshot"},
        "sinks": [{"type": "jsonl", "path": "out.jsonl"}],
    }})
    first = run_meepo("run", "p", "--once", cwd=tmp_path)  # the rows written so far
    assert first.returncode == 0, first.stderr
    harness.execute("UPDATE store SET id = 99 WHERE id = 2",  # customers 11, 12 -> 99 unlogged
                    "DELETE FROM store WHERE id = 1")  # customer 10 -> NULL unlogged
    second = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    customers: dict[int, Any] = {}
    for line in (tmp_path / "out.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["table"] == "customer" and event["action"] not in ("delete", "schema"):
            customers[event["pk"]] = event["after"]["store_id"]
    assert customers == dict(harness.db.execute("SELECT id, store_id FROM customer"))
    assert customers == {10: None, 11: 99, 12: 99, 13: None}
