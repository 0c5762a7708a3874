"""meepo's ``format = "debezium"`` against Debezium's MySQL connector, without a JVM: the
MySQL workload of the golden files (``tests/golden/mysql_workload.sql``) runs on a real
MariaDB, meepo's ``mysql`` source captures it (a snapshot of the rows that exist first,
then the binlog, keeping up with the workload), the ``kafka`` sink publishes it, and every
message read back equals the one Debezium 3.6.3 wrote for the same change
(``tests/golden/mysql_*.jsonl``, recorded by ``tools/record_debezium_golden.py`` through
its protocol proxy), byte for byte once the fields that differ between any two runs are
masked (:mod:`debezium_golden`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meepo_core import Options, RowEvent
from meepo_core.testing import make_context, run_meepo, write_config

from .conftest import publish
from .debezium_golden import (
    GOLDEN,
    assert_same_messages,
    clear_topics,
    golden,
    live_reason,
    published,
    split_workload,
)

pytestmark = pytest.mark.integration
meepo_mysql = pytest.importorskip("meepo_mysql",
                                  reason="needs meepo-mysql (the integration suite)")

WORKLOAD = GOLDEN / "mysql_workload.sql"
DATABASE = "inv"
#: The tables Debezium's snapshot read rows from (the others were empty then).
SNAPSHOT_TABLES = ["inv.customers", "inv.pairs", "inv.unsigned_keys"]


def statements(sql: str) -> list[str]:
    """The statements of a workload part (each ends with ";" at the end of a line)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";\n") if part.strip(" ;\n")]


def run_step(mariadb: Any, sql: str) -> None:
    with mariadb.connect(DATABASE, autocommit=False) as conn, conn.cursor() as cursor:
        for statement in statements(sql):
            cursor.execute(statement)
        conn.commit()


def capture(mariadb: Any, tmp_path: Path) -> tuple[list[RowEvent], list[RowEvent]]:
    """(snapshot reads, streamed changes) meepo captures for the workload."""
    setup, steps = split_workload(WORKLOAD.read_text())
    mariadb.start()
    mariadb.execute(f"DROP DATABASE IF EXISTS {DATABASE}", database=None)
    mariadb.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4", database=None)
    run_step(mariadb, setup)
    file, pos = mariadb.execute("SHOW MASTER STATUS", database=None)[0][:2]
    options = {"type": "mysql", "dsn": mariadb.dsn, "tables": [f"{DATABASE}.*"],
               "start": f"{file}:{pos}", "no_pk": "row"}
    reader = meepo_mysql.MySQLSource.from_options(Options(dict(options), "source", tmp_path))
    try:
        reads = [event for table in reader.snapshots.tables(SNAPSHOT_TABLES)
                 for event in reader.snapshots.read_chunk(table, None, 1000, None)]
    finally:
        reader.close()
    changes: list[RowEvent] = []
    checkpoint = None
    for step in steps:  # a stream that keeps up: it reads each step before the next runs
        run_step(mariadb, step)
        source = meepo_mysql.MySQLSource.from_options(Options(dict(options), "source",
                                                              tmp_path))
        try:
            for batch in source.stream(checkpoint, make_context(tmp_path), once=True):
                changes.extend(batch.events)
                if batch.position is not None:
                    checkpoint = batch.position
        finally:
            source.close()
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
    "precise_unsigned": {"bigint_unsigned_handling_mode": "precise"},
    "transactions": {"provide_transaction_metadata": True},
}


@pytest.fixture(scope="module")
def captured(mariadb: Any, tmp_path_factory: pytest.TempPathFactory,
             ) -> tuple[list[RowEvent], list[RowEvent]]:
    return capture(mariadb, tmp_path_factory.mktemp("capture"))


def sink_options(variant: str) -> dict[str, Any]:
    settings = dict(VARIANTS[variant])
    schemas = settings.pop("schemas", True)
    return {"format": "debezium", "schemas": schemas,
            "debezium": {"topic_prefix": "dbz", **settings}}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_mysql_messages_equal_debeziums(captured: tuple[list[RowEvent], list[RowEvent]],
                                        bootstrap: str, admin: Any, tmp_path: Path,
                                        variant: str) -> None:
    expected = golden(variant, database="mysql")
    clear_topics(admin, list(expected))
    reads, changes = captured
    publish(tmp_path, bootstrap, reads, changes, **sink_options(variant))
    assert_same_messages(published(bootstrap, sorted(expected)), expected)


@pytest.mark.skipif(live_reason() is not None, reason=live_reason() or "")
def test_mysql_messages_equal_debeziums_live(
        captured: tuple[list[RowEvent], list[RowEvent]], bootstrap: str, admin: Any,
        tmp_path: Path) -> None:
    """Debezium's MySQL connector itself, run now (through the recording tool's proxy) on
    its own MariaDB for the same workload, writes what meepo writes."""
    import importlib.util

    tool = Path(__file__).parents[1] / "tools" / "record_debezium_golden.py"
    spec = importlib.util.spec_from_file_location("record_debezium_golden", tool)
    assert spec is not None and spec.loader is not None
    recorder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recorder)
    recorder.record(tmp_path / "live", ["schemas"], "mysql")
    expected = golden("schemas", tmp_path / "live", database="mysql")
    clear_topics(admin, list(expected))
    reads, changes = captured
    publish(tmp_path, bootstrap, reads, changes, **sink_options("schemas"))
    assert_same_messages(published(bootstrap, sorted(expected)), expected)


def test_check_names_the_columns_debezium_writes_otherwise(
        captured: tuple[list[RowEvent], list[RowEvent]], mariadb: Any, bootstrap: str,
        tmp_path: Path) -> None:
    """``meepo check`` says which columns of the followed tables the Debezium format
    writes differently from Debezium (here MariaDB's JSON and a default it does not
    evaluate) and the keyless tables the source skips by default, without failing."""
    mariadb.execute("CREATE TABLE IF NOT EXISTS inv.stamped (id INT PRIMARY KEY, "
                    "at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)", database=None)
    write_config(tmp_path, {"publish": {
        "source": {"type": "mysql", "dsn": mariadb.dsn, "tables": [f"{DATABASE}.*"]},
        "sinks": [{"type": "kafka", "bootstrap_servers": bootstrap, "format": "debezium",
                   "debezium": {"topic_prefix": "dbz"}}]}})
    result = run_meepo("check", "publish", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert warnings == [
        "meepo: warning: sinks[0] kafka: table inv.no_key has no primary key: Debezium "
        "delivers its rows with a null key; the mysql source skips them unless its no_pk = "
        '"row"',
        "meepo: warning: sinks[0] kafka: table inv.stamped: column 'at' (datetime): its "
        "default current_timestamp() is left out of the schema's \"default\" (Debezium "
        "writes the evaluated value)",
        "meepo: warning: sinks[0] kafka: table inv.types: column 'c_json' (json): MariaDB "
        "JSON: Debezium writes the stored text, meepo the same JSON value re-serialised "
        "(spacing may differ)",
    ], result.stderr


def test_mysql_messages_read_back_into_the_same_events(
        captured: tuple[list[RowEvent], list[RowEvent]]) -> None:
    """The way back: every captured event, written in Debezium's format (schemas on,
    unsigned bigints exact) and decoded by the ``kafka`` source's decoder, has the values
    the ``mysql`` source gave; MariaDB JSON comes back as its text (Debezium's schema says
    only "string"), the same JSON value."""
    import json

    from meepo_kafka.debezium import DebeziumFormat
    from meepo_kafka.debezium_types import Modes

    encoder = DebeziumFormat("dbz", modes=Modes(bigint_unsigned="precise"))
    reads, changes = captured
    for event in [*reads, *changes]:
        back = encoder.decode(encoder.key(event), encoder.value(event), [])
        assert back is not None
        assert (back.schema, back.table, back.action) == (
            event.schema, event.table, event.action)
        assert back.pk == (event.pk if event.pk_columns else None)  # keyless: a null key
        for mine, theirs in ((back.before, event.before), (back.after, event.after)):
            if theirs is None:
                assert mine is None
                continue
            assert mine is not None
            if "c_json" in theirs and theirs["c_json"] is not None:
                mine = {**mine, "c_json": json.loads(mine["c_json"])}
            assert mine == theirs, event
