"""meepo's initial snapshot in ``format = "debezium"`` against Debezium's, without a JVM:
the snapshot workload (``tests/golden/postgres_snapshot.sql``: an empty first table, a
table of several rows, a table of one row, a composite key, an empty last table) runs on a
real server, ``meepo run --once`` with ``snapshot = "initial"`` copies and streams it into
Kafka, and every message equals Debezium's (``postgres_snapshot.jsonl``), the
``source.snapshot`` marks included (``first_in_data_collection``, ``true``,
``last_in_data_collection``, ``last``), byte for byte once the fields that differ between
any two runs are masked (:mod:`debezium_golden`)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from meepo_core.testing import run_meepo, write_config

from .conftest import read_topic
from .debezium_golden import (
    GOLDEN,
    clear_topics,
    first_difference,
    golden,
    message,
    split_workload,
)

pytestmark = pytest.mark.integration
pytest.importorskip("meepo_postgres", reason="needs meepo-postgres (the integration suite)")

WORKLOAD = GOLDEN / "postgres_snapshot.sql"


def test_initial_snapshot_marks_equal_debeziums(postgres: Any, bootstrap: str, admin: Any,
                                                tmp_path: Path) -> None:
    expected = golden("snapshot", marks=False)
    clear_topics(admin, list(expected))
    setup, steps = split_workload(WORKLOAD.read_text())
    with postgres.connect(autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS snap CASCADE")
        conn.execute(setup)
    name = f"snap_{uuid.uuid4().hex[:8]}"
    write_config(tmp_path, {"snap": {
        "source": {"type": "postgres", "dsn": postgres.url, "tables": ["snap.*"],
                   "slot": name, "publication": name},
        "sinks": [{"type": "kafka", "bootstrap_servers": bootstrap, "format": "debezium",
                   "debezium": {"topic_prefix": "dbz"}}],
        "snapshot": "initial", "snapshot_chunk_size": 2,  # several chunks per table
    }})
    first = run_meepo("run", "snap", "--once", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    with postgres.connect() as conn:
        for step in steps:
            with conn.transaction():
                conn.execute(step)
    second = run_meepo("run", "snap", "--once", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    for topic, wanted in expected.items():
        got = [message(topic, r.key, r.value, list(r.header_items), marks=False)
               for r in read_topic(bootstrap, topic)]
        assert len(got) == len(wanted), (
            f"{topic}: {len(got)} messages, Debezium {len(wanted)}: "
            f"{[json.loads(m.value or 'null') for m in got]}")
        for index, (mine, theirs) in enumerate(zip(got, wanted, strict=True)):
            assert mine == theirs, f"{topic} message {index}: {first_difference(mine, theirs)}"


def test_a_requested_snapshot_is_incremental_as_debeziums(
        postgres: Any, bootstrap: str, admin: Any, tmp_path: Path) -> None:
    """``meepo snapshot`` while streaming is Debezium's incremental snapshot: every read
    is ``incremental`` and has no ``txId`` or ``lsn`` (``postgres_incremental.jsonl``:
    Debezium's, asked by an execute-snapshot signal)."""
    topic = "dbz.incr.items"
    expected = golden("incremental", marks=False)[topic]
    clear_topics(admin, [topic])
    setup, _ = split_workload((GOLDEN / "postgres_incremental.sql").read_text())
    with postgres.connect(autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS incr CASCADE")
        conn.execute(setup)
    name = f"incr_{uuid.uuid4().hex[:8]}"
    write_config(tmp_path, {"incr": {
        "source": {"type": "postgres", "dsn": postgres.url, "tables": ["incr.items"],
                   "slot": name, "publication": name},
        "sinks": [{"type": "kafka", "bootstrap_servers": bootstrap, "format": "debezium",
                   "debezium": {"topic_prefix": "dbz"}}],
        "snapshot_chunk_size": 2,
    }})
    for command in (("run", "incr", "--once"), ("snapshot", "incr", "--table", "incr.items"),
                    ("run", "incr", "--once")):
        done = run_meepo(*command, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    records = read_topic(bootstrap, topic)
    got = [message(topic, r.key, r.value, list(r.header_items), marks=False) for r in records]
    assert len(got) == len(expected) == 5
    for index, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert mine == theirs, f"{topic} message {index}: {first_difference(mine, theirs)}"
    for record in records:  # masked above: a number there would pass
        source = json.loads(record.value or b"")["payload"]["source"]
        assert (source["snapshot"], source["txId"], source["lsn"]) == ("incremental", None, None)
