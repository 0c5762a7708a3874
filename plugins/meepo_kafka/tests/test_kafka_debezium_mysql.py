"""The Debezium envelope of MariaDB changes, field by field: ``meepo run`` with the ``mysql``
source and the ``kafka`` sink (``format = "debezium"``, ``schemas = false``, decimals as
strings, binary as base64) publishes an insert, an update and a delete of a row holding
every common type; each message is compared with Debezium's documented MySQL change event
and with what ``SELECT`` returns for the row (``test_kafka_debezium_mysql_golden.py``
compares with Debezium itself)."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meepo_core.testing import run_meepo, write_config

from .conftest import read_topic

pytestmark = pytest.mark.integration
pytest.importorskip("meepo_mysql", reason="needs meepo-mysql (the integration suite)")

DDL = """CREATE TABLE items (
  id INT PRIMARY KEY,
  amount DECIMAL(20, 6) NOT NULL,
  day DATE, moment DATETIME(6), stamp TIMESTAMP(6) NULL, span TIME(6),
  doc JSON, raw VARBINARY(16), tags SET('red', 'green', 'blue'), size ENUM('s', 'm', 'l'),
  yr YEAR, big BIGINT UNSIGNED, ratio DOUBLE, note VARCHAR(40) CHARACTER SET utf8mb4
)"""
COLUMNS = "id, amount, day, moment, stamp, span, doc, raw, tags, size, yr, big, ratio, note"
SELECT = (f"SELECT {COLUMNS}, UNIX_TIMESTAMP(stamp) FROM items WHERE id = 1")
EPOCH = datetime(1970, 1, 1)
MARIADB_GTID = re.compile(r"^\d+-\d+-\d+$")


def debezium_row(values: tuple[Any, ...]) -> dict[str, Any]:
    """What Debezium's MySQL connector (decimal.handling.mode=string, binary as base64,
    bigint.unsigned.handling.mode=long) writes for a row as SELECT returns it, worked out
    here independently of meepo."""
    (id_, amount, day, moment, _stamp, span, doc, raw, tags, size, yr, big, ratio, note,
     unix_stamp) = values
    return {
        "id": id_,
        "amount": str(amount),
        "day": (day - date(1970, 1, 1)).days,
        "moment": (moment - EPOCH) // timedelta(microseconds=1),
        "stamp": (EPOCH + timedelta(microseconds=int(Decimal(unix_stamp) * 10**6)))
        .isoformat() + "Z",
        "span": span // timedelta(microseconds=1),
        "doc": json.loads(doc),  # compared as JSON: the text is re-serialised
        "raw": base64.b64encode(raw).decode(),
        "tags": ",".join(t for t in ("red", "green", "blue") if t in tags.split(",")),
        "size": size,
        "yr": yr,
        "big": big - 2**64 if big >= 2**63 else big,  # the bits as a signed long
        "ratio": ratio,
        "note": note,
    }


def comparable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {**row, "doc": json.loads(row["doc"])}


def test_debezium_envelope_of_write_update_and_delete(
    mysql_db: Any, mariadb: Any, kafka_server: Any, make_topic: Any, tmp_path: Path
) -> None:
    mysql_db.execute(DDL)
    topic = make_topic(1, name=f"dbz.{mysql_db.name}.items")
    file, pos = mariadb.execute("SHOW MASTER STATUS", database=None)[0][:2]
    images: list[dict[str, Any] | None] = []
    began = time.time()
    mysql_db.execute(
        "INSERT INTO items VALUES (1, 12345678901234.000001, '2026-01-02', "
        "'2026-01-02 03:04:05.123456', '2026-01-02 03:04:05.654321', '-838:59:58.000001', "
        "'{\"a\": [1, 2.5, null], \"é\": \"🚀\"}', X'00FF10', 'red,blue', 'm', 2026, "
        "18446744073709551615, 0.1, 'naïve 🚀')")
    images.append(debezium_row(mysql_db.execute(SELECT)[0]))
    mysql_db.execute("UPDATE items SET amount = -0.5, tags = '', doc = '[]', raw = X'' "
                     "WHERE id = 1")
    images.append(debezium_row(mysql_db.execute(SELECT)[0]))
    mysql_db.execute("DELETE FROM items WHERE id = 1")
    ended = time.time()
    write_config(tmp_path, {"publish": {
        "source": {"type": "mysql", "dsn": mariadb.dsn, "tables": [f"{mysql_db.name}.items"],
                   "start": f"{file}:{pos}"},
        "sinks": [{"type": "kafka", "bootstrap_servers": kafka_server.bootstrap,
                   "topic_prefix": "dbz.", "format": "debezium", "tombstones": True,
                   "schemas": False,
                   "debezium": {"decimal_handling_mode": "string",
                                "binary_handling_mode": "base64"}}]}})
    result = run_meepo("run", "publish", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    records = read_topic(kafka_server.bootstrap, topic)
    assert [r.key for r in records] == [b'{"id":1}'] * 4
    assert records[3].value is None  # the tombstone after the delete
    messages = [r.json() for r in records[:3]]
    expected = [(None, images[0], "c"), (images[0], images[1], "u"), (images[1], None, "d")]
    gtids = []
    for message, (before, after, op) in zip(messages, expected, strict=True):
        assert set(message) == {"before", "after", "source", "op", "ts_ms", "ts_us", "ts_ns",
                                "transaction"}
        assert (comparable(message["before"]), comparable(message["after"])) == (before, after)
        assert message["op"] == op and message["transaction"] is None
        assert began * 1000 - 1000 <= message["ts_ms"] <= time.time() * 1000 + 1000
        source = message["source"]
        assert set(source) == {"version", "connector", "name", "ts_ms", "snapshot", "db",
                               "sequence", "ts_us", "ts_ns", "table", "server_id", "gtid",
                               "file", "pos", "row", "thread", "query"}
        assert source["version"].startswith("meepo-kafka ")
        assert (source["connector"], source["name"], source["snapshot"]) == (
            "mysql", "publish", "false")
        assert (source["db"], source["table"]) == (mysql_db.name, "items")
        assert int(began) * 1000 <= source["ts_ms"] <= ended * 1000 + 1000  # commit, in s
        assert source["ts_ms"] % 1000 == 0  # the binlog keeps whole seconds
        assert MARIADB_GTID.match(source["gtid"]), source["gtid"]
        assert source["file"] == file and isinstance(source["pos"], int) and source["pos"] > pos
        # the server id is the GTID's middle part (the test server's --server-id=1)
        assert (source["server_id"], source["row"], source["thread"], source["query"]) == (
            1, 0, None, None)
        gtids.append(source["gtid"])
    assert len(set(gtids)) == 3  # one transaction each
    positions = [m["source"]["pos"] for m in messages]
    assert positions == sorted(positions)
    headers = [r.headers for r in records[:3]]
    sequences = [int(h["meepo.sequence"] or b"0") for h in headers]
    assert sequences == sorted(sequences)
    assert all(json.loads(h["meepo.position"] or b"")["file"] == file for h in headers)
