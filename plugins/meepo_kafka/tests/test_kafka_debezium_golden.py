"""meepo's ``format = "debezium"`` against Debezium itself, without a JVM: the PostgreSQL
workload of the golden files runs on a real server, meepo's ``postgres`` source captures
it (a snapshot of the rows that exist first, then the stream), the ``kafka`` sink publishes
it, and every message read back from the topics equals the one Debezium 3.6.3 wrote for the
same change (``tests/golden/``), byte for byte once the fields that differ between any two
runs are masked (:mod:`debezium_golden`)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from meepo_core import Options, RowEvent
from meepo_core.testing import make_context

from .conftest import publish
from .debezium_golden import (
    WORKLOAD,
    assert_same_messages,
    clear_topics,
    golden,
    live_reason,
    published,
    split_workload,
)

pytestmark = pytest.mark.integration
meepo_postgres = pytest.importorskip("meepo_postgres",
                                     reason="needs meepo-postgres (the integration suite)")

SNAPSHOT_TABLES = ["inv.customers", "inv.pairs"]


def capture(postgres: Any, tmp_path: Path) -> tuple[list[RowEvent], list[RowEvent]]:
    """(snapshot reads, streamed changes) meepo captures for the workload."""
    setup, steps = split_workload(WORKLOAD.read_text())
    with postgres.connect(autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS inv CASCADE")
        conn.execute(setup)
    name = f"golden_{uuid.uuid4().hex[:8]}"
    options = {"type": "postgres", "dsn": postgres.url, "tables": ["inv.*"], "slot": name,
               "publication": name, "heartbeat": 1}

    def drain(checkpoint: Any) -> tuple[list[RowEvent], Any]:
        source = meepo_postgres.PostgresSource.from_options(
            Options(dict(options), "source", tmp_path))
        events: list[RowEvent] = []
        position = checkpoint
        try:
            for batch in source.stream(checkpoint, make_context(tmp_path), once=True):
                events.extend(batch.events)
                if batch.position is not None:
                    position = batch.position
                    source.acknowledge(batch.position)
        finally:
            source.close()
        return events, position

    nothing, start = drain(None)  # creates the slot and the publication
    assert nothing == []
    reader = meepo_postgres.PostgresSource.from_options(Options(dict(options), "source",
                                                                tmp_path))
    try:
        reads = [event for table in reader.snapshots.tables(SNAPSHOT_TABLES)
                 for event in reader.snapshots.read_chunk(table, None, 1000, None)]
    finally:
        reader.close()
    with postgres.connect() as conn:
        for step in steps:
            with conn.transaction():
                conn.execute(step)
    changes, _ = drain(start)
    return reads, changes


#: meepo's sink options for each recorded Debezium configuration.
VARIANTS: dict[str, dict[str, Any]] = {
    "schemas": {},
    "no_schemas": {"schemas": False},
    "string_connect_hex": {"decimal_handling_mode": "string", "time_precision_mode": "connect",
                           "binary_handling_mode": "hex"},
    "double_micros_base64": {"decimal_handling_mode": "double",
                             "time_precision_mode": "adaptive_time_microseconds",
                             "binary_handling_mode": "base64"},
    "transactions": {"provide_transaction_metadata": True},
    "heartbeats": {"heartbeat_interval_ms": 1},
}


@pytest.fixture(scope="module")
def captured(postgres: Any, tmp_path_factory: pytest.TempPathFactory,
             ) -> tuple[list[RowEvent], list[RowEvent]]:
    return capture(postgres, tmp_path_factory.mktemp("capture"))


def sink_options(variant: str) -> dict[str, Any]:
    settings = dict(VARIANTS[variant])
    schemas = settings.pop("schemas", True)
    return {"format": "debezium", "schemas": schemas,
            "debezium": {"topic_prefix": "dbz", **settings}}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_postgres_messages_equal_debeziums(captured: tuple[list[RowEvent], list[RowEvent]],
                                           bootstrap: str, admin: Any, tmp_path: Path,
                                           variant: str) -> None:
    expected = golden(variant)
    clear_topics(admin, list(expected))
    reads, changes = captured
    publish(tmp_path, bootstrap, reads, changes, **sink_options(variant))
    assert_same_messages(published(bootstrap, sorted(expected)), expected)


@pytest.mark.skipif(live_reason() is not None, reason=live_reason() or "")
def test_postgres_messages_equal_debeziums_live(
        captured: tuple[list[RowEvent], list[RowEvent]], bootstrap: str, admin: Any,
        tmp_path: Path) -> None:
    """Debezium itself, run now on its own server for the same workload, writes what meepo
    writes (not only what it wrote when the golden files were recorded)."""
    import importlib.util

    tool = Path(__file__).parents[1] / "tools" / "record_debezium_golden.py"
    spec = importlib.util.spec_from_file_location("record_debezium_golden", tool)
    assert spec is not None and spec.loader is not None
    recorder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recorder)
    recorder.record(tmp_path / "live", ["schemas"])
    expected = golden("schemas", tmp_path / "live")
    clear_topics(admin, list(expected))
    reads, changes = captured
    publish(tmp_path, bootstrap, reads, changes, **sink_options("schemas"))
    assert_same_messages(published(bootstrap, sorted(expected)), expected)
