"""JSON columns back from Debezium's messages, exactly: the ``kafka`` source's decoder
reads the ``io.debezium.data.Json`` values Debezium itself wrote (the snapshot golden
file: numbers beyond a double's precision and range, ``1.10``, bare scalars, json and
jsonb) into documents whose numbers keep their text, and writing them again gives
Debezium's text, byte for byte (no server: the golden file is the oracle). And MariaDB's
JSON, into the format, compared with SELECT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from meepo_kafka.debezium import DebeziumFormat

from meepo_core import JsonNumber, dumps_exact
from meepo_core.testing import run_meepo, write_config

from .conftest import read_topic
from .debezium_golden import GOLDEN


def d_json_records() -> list[dict[str, str]]:
    records = [json.loads(line) for line in
               (GOLDEN / "postgres_snapshot.jsonl").read_text().splitlines()]
    return [record for record in records if record["topic"] == "dbz.snap.d_json"]


def test_debeziums_json_values_read_back_exactly() -> None:
    decoder = DebeziumFormat("dbz")
    checked = 0
    for record in d_json_records():
        event = decoder.decode(record["key"].encode(), record["value"].encode(), [])
        assert event is not None and event.after is not None
        written = json.loads(record["value"])["payload"]["after"]
        for column in ("j", "jb"):
            assert dumps_exact(event.after[column]) == written[column], (event.pk, column)
            checked += 1
        if event.pk == 1:
            assert isinstance(event.after["jb"]["big"], JsonNumber)
            assert event.after["jb"]["f"] == 1.1  # the float every other sink sees
    assert checked == 8


def number_texts(text: str) -> Any:
    """A JSON document with every number as its text: what to compare for exactness."""
    return json.loads(text, parse_float=lambda s: ("number", s),
                      parse_int=lambda s: ("number", s))


@pytest.mark.integration
def test_mariadb_json_numbers_reach_the_debezium_format_as_written(
        mysql_db: Any, mariadb: Any, kafka_server: Any, make_topic: Any,
        tmp_path: Path) -> None:
    """MariaDB's JSON is text: its numbers arrive in the envelope as SELECT gives them."""
    pytest.importorskip("meepo_mysql", reason="needs meepo-mysql (the integration suite)")
    mysql_db.execute("CREATE TABLE docs (id INT PRIMARY KEY, doc JSON)")
    topic = make_topic(1, name=f"dbz.{mysql_db.name}.docs")
    file, pos = mariadb.execute("SHOW MASTER STATUS", database=None)[0][:2]
    mysql_db.execute(
        "INSERT INTO docs VALUES (1, '{\"big\": 12345678901234567890.123456789, "
        "\"e\": 1e400, \"f\": 1.10, \"i\": 12345678901234567890123, \"a\": [0.1, -0.0]}'), "
        "(2, '1.10')")
    selected = {row[0]: row[1] for row in mysql_db.execute("SELECT id, doc FROM docs")}
    write_config(tmp_path, {"publish": {
        "source": {"type": "mysql", "dsn": mariadb.dsn, "tables": [f"{mysql_db.name}.docs"],
                   "start": f"{file}:{pos}"},
        "sinks": [{"type": "kafka", "bootstrap_servers": kafka_server.bootstrap,
                   "topic_prefix": "dbz.", "format": "debezium"}]}})
    result = run_meepo("run", "publish", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = read_topic(kafka_server.bootstrap, topic)
    docs = {m["payload"]["after"]["id"]: m["payload"]["after"]["doc"]
            for m in (r.json() for r in records)}
    assert number_texts(docs[1]) == number_texts(selected[1])
    assert b'"doc":"1.10"}' in (records[1].value or b"")  # Debezium's string, as written
