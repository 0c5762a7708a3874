"""MariaDB's DDL as Debezium's schema change records: ``meepo run`` with the ``mysql``
source and the ``kafka`` sink (``format = "debezium"``, with and without
``exactly_once``) after each step of a workload (CREATE, ALTER, RENAME, DROP TABLE,
TRUNCATE); the schema change topic holds one record per statement with Debezium's key,
change types, ids and DDL, and the table's columns compared field by field with what
Debezium's MySQL connector writes for that table (worked out by hand from the DDL, with
MariaDB's own spelling of the types: see the module docstring of
:mod:`meepo_kafka.debezium_schema_changes`)."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from meepo_core.testing import meepo_command, run_meepo, write_config

from .conftest import CLIENT_LOG, unique, wait_for

pytestmark = pytest.mark.integration
pytest.importorskip("meepo_mysql", reason="needs meepo-mysql (the integration suite)")

CREATE = ("CREATE TABLE items (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
          "name VARCHAR(40) NOT NULL DEFAULT 'x' COMMENT 'the name', "
          "stamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) "
          "DEFAULT CHARSET=utf8mb4 COMMENT='all items'")
ALTER = "ALTER TABLE items ADD COLUMN size ENUM('s','m') CHARACTER SET latin1 AFTER name"
RENAME = "RENAME TABLE items TO items2"
TRUNCATE = "TRUNCATE TABLE items2"
DROP = "DROP TABLE items2"


def read_committed(bootstrap: str, topic: str) -> list[tuple[int, Any, Any]]:
    """(partition, key, value) of every message a ``read_committed`` reader sees in
    ``topic`` (one partition), read to the partition's end (past transaction markers)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "logger": CLIENT_LOG})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10,
                                                   cached=False)
        if high <= low:
            return []
        consumer.assign([TopicPartition(topic, 0, low)])
        found: list[tuple[int, Any, Any]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                found.append((message.partition(),
                              json.loads(message.key()) if message.key() else None,
                              json.loads(message.value() or b"null")))
            (position,) = consumer.position([TopicPartition(topic, 0)])
            if position.offset >= high:
                return found
        raise AssertionError(f"could not read {topic} to offset {high}")
    finally:
        consumer.close()


def payload(message: Any) -> Any:
    """A change event's payload, with or without the JSON converter's schema (the mysql
    source's rows are written with one once they carry column definitions)."""
    if isinstance(message, dict) and set(message) == {"schema", "payload"}:
        return message["payload"]
    return message


def column(name: str, jdbc: int, type_name: str, position: int, **more: Any) -> dict[str, Any]:
    return {"name": name, "jdbcType": jdbc, "nativeType": None, "typeName": type_name,
            "typeExpression": type_name, "charsetName": None, "length": None, "scale": None,
            "position": position, "optional": True, "autoIncremented": False,
            "generated": False, "comment": None, "defaultValueExpression": None,
            "enumValues": None, **more}


ID = column("id", 4, "INT", 1, optional=False, autoIncremented=True,
            generated=True)  # no length: the statement wrote INT (MariaDB says int(11))
#: ``id`` in the records of later statements, each made by a new ``meepo run``, which has
#: not seen the CREATE: the server's width (as Debezium after a snapshot)
ID_AFTER_RESTART = {**ID, "length": 11}
NAME = column("name", 12, "VARCHAR", 2, charsetName="utf8mb4", length=40, optional=False,
              comment="the name", defaultValueExpression="x")
SIZE = column("size", 1, "ENUM", 3, charsetName="latin1", length=1,
              enumValues=["'s'", "'m'"])


def stamp(position: int) -> dict[str, Any]:
    return column("stamp", 2014, "TIMESTAMP", position, optional=False,
                  autoIncremented=True, generated=True,
                  defaultValueExpression="1970-01-01 00:00:00")


def table(*columns: dict[str, Any]) -> dict[str, Any]:
    return {"defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["id"],
            "columns": list(columns), "comment": "all items"}


@pytest.mark.parametrize("exactly_once", [False, True])
def test_mariadb_ddl_becomes_debeziums_schema_change_records(
    mysql_db: Any, mariadb: Any, kafka_server: Any, make_topic: Any, tmp_path: Path,
    exactly_once: bool
) -> None:
    db = mysql_db.name
    server = unique("dbz")
    schema_topic = make_topic(1, name=server)
    for name in ("items", "items2"):
        make_topic(1, name=f"{server}.{db}.{name}")
    file, pos = mariadb.execute("SHOW MASTER STATUS", database=None)[0][:2]
    sink: dict[str, Any] = {"type": "kafka", "bootstrap_servers": kafka_server.bootstrap,
                            "topic_prefix": f"{server}.", "format": "debezium",
                            "server_name": server,
                            "debezium": {"skipped_operations": "none"}}
    if exactly_once:
        sink.update(exactly_once=True, transactional_id=unique("tx"),
                    positions_topic=unique("positions"))
    write_config(tmp_path, {"publish": {
        "source": {"type": "mysql", "dsn": mariadb.dsn, "tables": [f"{db}.*"],
                   "start": f"{file}:{pos}"},
        "sinks": [sink]}})

    # one run after each step: meepo reads a table's definition when it meets the
    # statement, so a run long after a later DDL would see the later definition
    steps = [[CREATE, "INSERT INTO items (name) VALUES ('a')"],
             [ALTER, "INSERT INTO items (name, size) VALUES ('b', 'm')"],
             [RENAME], [TRUNCATE], [DROP]]
    for statements in steps:
        for statement in statements:
            mysql_db.execute(statement)
        result = run_meepo("run", "publish", "--once", cwd=tmp_path)
        assert result.returncode == 0, result.stderr

    records = read_committed(kafka_server.bootstrap, schema_topic)
    assert {partition for partition, _key, _value in records} == {0}
    keys = [key for _partition, key, _value in records]
    assert keys == [{"schema": keys[0]["schema"], "payload": {"databaseName": db}}] * 4
    values = [value["payload"] for _partition, _key, value in records]
    # a DROP TABLE's ddl is Debezium's: the words before the table list, the quoted name
    assert [v["ddl"] for v in values] == [CREATE, ALTER, RENAME, f"DROP TABLE `{db}`.`items2`"]
    assert [(v["databaseName"], v["schemaName"]) for v in values] == [(db, None)] * 4
    changes = [v["tableChanges"] for v in values]
    assert [[(c["type"], c["id"]) for c in found] for found in changes] == [
        [("CREATE", f'"{db}"."items"')], [("ALTER", f'"{db}"."items"')],
        [("ALTER", f'"{db}"."items2"')], [("DROP", f'"{db}"."items2"')]]
    assert changes[0][0]["table"] == table(ID, NAME, stamp(3))
    assert changes[1][0]["table"] == table(ID_AFTER_RESTART, NAME, SIZE, stamp(4))
    assert changes[2][0]["table"] == table(ID_AFTER_RESTART, NAME, SIZE, stamp(4))
    assert changes[3][0]["table"] is None
    sources = [v["source"] for v in values]
    assert [(s["connector"], s["name"], s["db"], s["snapshot"], s["file"]) for s in sources] \
        == [("mysql", server, db, "false", file)] * 4
    assert [s["table"] for s in sources] == ["items", "items", "items2", "items2"]
    offsets = [s["pos"] for s in sources]
    assert offsets == sorted(offsets) and offsets[0] > pos

    # the truncate: Debezium's "t" event on the table's topic, after the rows
    messages = read_committed(kafka_server.bootstrap, f"{server}.{db}.items")
    assert [payload(value)["op"] for _partition, _key, value in messages] == ["c", "c"]
    ((_partition, key, truncate),) = read_committed(kafka_server.bootstrap,
                                                    f"{server}.{db}.items2")
    assert key is None
    # (schemaless: the run that met the TRUNCATE wrote no rows of items2, so it knows no
    # envelope schema of that table; see the README)
    truncate = payload(truncate)
    assert (truncate["op"], truncate["source"]["table"]) == ("t", "items2")
    assert (truncate["before"], truncate["after"]) == (None, None)


def test_sigkill_between_ddl_and_rows_leaves_each_schema_change_record_once(
    mysql_db: Any, mariadb: Any, kafka_server: Any, make_topic: Any, tmp_path: Path
) -> None:
    """``meepo run`` (``exactly_once``, Debezium format) is SIGKILLed again and again while
    a session alternates ``ALTER TABLE ... ADD COLUMN`` and inserts of the new shape; after
    a last run, a ``read_committed`` reader sees every DDL's schema change record once, in
    statement order, and every row once, each written with its statement's columns.
    (In the runs made so far no kill caught a DDL's record itself in an unfinished
    transaction: the topic held no aborted copy. That case is proven deterministically by
    ``test_under_exactly_once_a_replayed_schema_change_is_seen_once``.)"""
    db = mysql_db.name
    server = unique("dbz")
    schema_topic = make_topic(1, name=server)
    rows_topic = make_topic(1, name=f"{server}.{db}.t")
    mysql_db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    file, pos = mariadb.execute("SHOW MASTER STATUS", database=None)[0][:2]
    write_config(tmp_path, {"eo": {
        # heartbeat: a replica connection that goes silent after the kill of the one
        # before it (seen once in a few runs without) is noticed and made again
        "source": {"type": "mysql", "dsn": mariadb.dsn, "tables": [f"{db}.t"],
                   "start": f"{file}:{pos}", "heartbeat": 1},
        "sinks": [{"type": "kafka", "bootstrap_servers": kafka_server.bootstrap,
                   "topic_prefix": f"{server}.", "format": "debezium",
                   "server_name": server, "exactly_once": True,
                   "transactional_id": unique("tx"), "positions_topic": unique("positions")}],
        "status_interval": 0}})
    statements: list[str] = []
    rng = random.Random(11)
    log = (tmp_path / "runs.log").open("wb")
    process = subprocess.Popen(meepo_command("run", "eo"), cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=log)
    kills = 0
    try:
        def kill_and_restart() -> subprocess.Popen[bytes]:
            nonlocal kills
            process.kill()
            process.wait(30)
            kills += 1
            return subprocess.Popen(meepo_command("run", "eo"), cwd=tmp_path,
                                    stdout=subprocess.DEVNULL, stderr=log)

        for step in range(1, 13):
            statements.append(f"ALTER TABLE t ADD COLUMN c{step} INT DEFAULT {step}")
            mysql_db.execute(statements[-1])
            if step % 4 == 2:  # killed while the DDL's record may be on its way
                time.sleep(rng.uniform(0.0, 0.1))
                process = kill_and_restart()
            # the pipeline committed the DDL's record (so it reads each definition before
            # the next ALTER, and the kills hit a pipeline at work)
            wait_for(lambda: len(read_committed(kafka_server.bootstrap, schema_topic))
                     >= len(statements), 120, f"the record of {statements[-1]!r}")
            for row in range(3):
                mysql_db.execute(f"INSERT INTO t (id) VALUES ({step * 10 + row})")
            if step % 4 == 0:  # killed after the DDL, while the rows are on their way
                time.sleep(rng.uniform(0.0, 0.3))
                process = kill_and_restart()
    finally:
        process.kill()
        process.wait(30)
        log.close()
    result = run_meepo("run", "eo", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert kills == 6
    # every run killed had got going (the last one, killed at once, may not have)
    starts = (tmp_path / "runs.log").read_text().count("pipeline eo starting from")
    assert starts >= kills, (tmp_path / "runs.log").read_text()[-3000:]

    records = read_committed(kafka_server.bootstrap, schema_topic)
    assert [value["payload"]["ddl"] for _p, _k, value in records] == statements
    widths = [len(value["payload"]["tableChanges"][0]["table"]["columns"])
              for _p, _k, value in records]
    assert widths == list(range(2, 14))  # id and c1..cN after the N-th ALTER
    messages = [payload(value)
                for _p, _k, value in read_committed(kafka_server.bootstrap, rows_topic)]
    assert [m["after"]["id"] for m in messages] == [
        step * 10 + row for step in range(1, 13) for row in range(3)]
    # each row has the columns of the table when it was written: c1..c<step>
    assert [sorted(m["after"]) for m in messages] == [
        sorted(["id", *(f"c{n}" for n in range(1, step + 1))])
        for step in range(1, 13) for _row in range(3)]
