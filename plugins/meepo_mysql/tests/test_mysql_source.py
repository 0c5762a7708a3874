"""The mysql source against a real MariaDB: contract, the original example, row images,
keys, filtering and event metadata."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from meepo_mysql import MySQLSource
from meepo_mysql.rows import TableDecoder

from meepo_core import Options
from meepo_core.testing import SourceContract, run_meepo, write_config


class TestMySQLSourceContract(SourceContract):
    @pytest.fixture(autouse=True)
    def _database(self, mysql_db: Any) -> None:
        self.db = mysql_db
        mysql_db.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))")
        file, pos = mysql_db.server.execute("SHOW MASTER STATUS", database=None)[0][:2]
        self.start = f"{file}:{pos}"

    def make_source(self) -> MySQLSource:
        options = {"type": "mysql", "dsn": self.db.server.dsn, "tables": [f"{self.db.name}.items"],
                   "start": self.start, "heartbeat": 1}
        return MySQLSource.from_options(Options(options, "source", self.tmp_path))

    def produce(self, count: int) -> list[Any]:
        ids = []
        with self.db.connect(autocommit=True) as conn, conn.cursor() as cur:
            for _ in range(count):
                cur.execute("INSERT INTO items (name) VALUES ('x')")
                ids.append(cur.lastrowid)
        return ids


EXAMPLE_SQL = [
    "INSERT INTO test (data) VALUES ('a')",
    "INSERT INTO test (data) VALUES ('b'), ('c'), ('d')",
    "UPDATE test SET data = 'aa' WHERE id = 1",
    "UPDATE test SET data = 'bb' WHERE id = 2",
    "UPDATE test SET data = 'cc' WHERE id != 1",
    "DELETE FROM test WHERE id != 1",
    "DELETE FROM test WHERE id = 1",
]
EXAMPLE_OUTPUT = """\
test_write 1
test_write 2
test_write 3
test_write 4
test_update 1
test_update 2
test_update 2
test_update 3
test_update 4
test_delete 2
test_delete 3
test_delete 4
test_delete 1
"""


def test_original_meepo_example_prints_exactly_13_lines(harness: Any, tmp_path: Path) -> None:
    harness.execute("CREATE TABLE test (id INT AUTO_INCREMENT PRIMARY KEY, data VARCHAR(10))")
    start = harness.end()
    harness.execute(*EXAMPLE_SQL)
    source = {"type": "mysql", "dsn": harness.server.dsn, "tables": [f"{harness.db.name}.test"],
              "start": start}
    write_config(tmp_path, {"example": {"source": source, "sinks": [{"type": "print"}],
                                        "checkpoint": "none"}})
    result = run_meepo("run", "example", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXAMPLE_OUTPUT


TYPES_TABLE = """CREATE TABLE types (
  b2 INT NOT NULL, a1 BIGINT UNSIGNED NOT NULL,
  ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT,
  mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT,
  dec1 DECIMAL(30,10), dec2 DECIMAL(5,2), f FLOAT, d DOUBLE,
  c CHAR(5), vc VARCHAR(300), tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB,
  dt DATE, dtm DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(2), tm6 TIME(6), yr YEAR,
  en ENUM('x','y','z'), st SET('p','q','r'), bt BIT(10), bt1 BIT(1), js JSON, nul INT,
  PRIMARY KEY (a1, b2))"""

TYPES_INSERT = """INSERT INTO types VALUES (
  7, 18446744073709551615,
  -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808,
  -12345678901234567890.0123456789, 999.99, 3.14, 2.718281828459045,
  'ab', 'héllo 😀', 'long 😀 text', x'0001', x'ff00', x'deadbeef',
  '2024-02-29', '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123', '-12:34:56.78',
  '838:59:59.000001', 2024, 'y', 'p,r', b'1010000001', b'1',
  '{"a": [1, 2, {"b": null}], "c": "😀", "n": 1.5}', NULL)"""


def _float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


EXPECTED_ROW = {
    "b2": 7, "a1": 18446744073709551615,
    "ti": -128, "tu": 255, "si": -32768, "su": 65535, "mi": -8388608, "mu": 16777215,
    "i": -2147483648, "iu": 4294967295, "bi": -9223372036854775808,
    "dec1": Decimal("-12345678901234567890.0123456789"), "dec2": Decimal("999.99"),
    "f": _float32(3.14), "d": 2.718281828459045,
    "c": "ab", "vc": "héllo 😀", "tx": "long 😀 text",
    "bn": b"\x00\x01\x00\x00", "vb": b"\xff\x00", "bl": b"\xde\xad\xbe\xef",
    "dt": date(2024, 2, 29), "dtm": datetime(2024, 2, 29, 13, 14, 15, 123456),
    # Inserted with the session in +05:00, so 08:14:15.123 UTC.
    "ts": datetime(2024, 2, 29, 8, 14, 15, 123000, tzinfo=UTC),
    "tm": -timedelta(hours=12, minutes=34, seconds=56, milliseconds=780),
    "tm6": timedelta(hours=838, minutes=59, seconds=59, microseconds=1), "yr": 2024,
    "en": "y", "st": {"p", "r"}, "bt": 0b1010000001, "bt1": 1,
    "js": {"a": [1, 2, {"b": None}], "c": "😀", "n": 1.5}, "nul": None,
}


def test_row_images_decode_every_column_type(harness: Any) -> None:
    harness.execute(TYPES_TABLE)
    start = harness.end()
    harness.transaction("SET time_zone = '+05:00'", TYPES_INSERT)
    harness.execute(
        "UPDATE types SET st = '', en = NULL, js = '[]', tx = NULL, tm = '-00:00:00.01', "
        "bt = b'0', ts = '1999-12-31 23:59:59.999'"
    )
    harness.execute("DELETE FROM types")
    events, _ = harness.drain(None, start=start)
    assert [(e.action, e.pk) for e in events] == [
        ("write", (18446744073709551615, 7)),
        ("update", (18446744073709551615, 7)),
        ("delete", (18446744073709551615, 7)),
    ]
    write, update, delete = events
    assert write.before is None
    assert write.after == EXPECTED_ROW
    assert update.before == EXPECTED_ROW
    changed = {**EXPECTED_ROW, "st": set(), "en": None, "js": [], "tx": None,
               "tm": -timedelta(milliseconds=10), "bt": 0,
               "ts": datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)}
    assert update.after == changed
    assert delete.before == changed and delete.after is None
    assert write.after is not None and write.after["ts"].tzinfo is UTC


def test_composite_key_follows_key_order_not_column_order(harness: Any) -> None:
    harness.execute("CREATE TABLE k (a INT, b VARCHAR(5), c INT, PRIMARY KEY (b, a))")
    start = harness.end()
    harness.execute("INSERT INTO k VALUES (1, 'x', 9)", "UPDATE k SET c = 10")
    events, _ = harness.drain(None, start=start)
    assert [(e.action, e.pk) for e in events] == [("write", ("x", 1)), ("update", ("x", 1))]
    assert {e.pk_columns for e in events} == {("b", "a")}
    assert all(set(e.position) == {"file", "pos"} for e in events)  # where each was read


def test_key_change_carries_old_key_in_before(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    start = harness.end()
    harness.execute("INSERT INTO t VALUES (1, 1)", "UPDATE t SET id = 2 WHERE id = 1")
    events, _ = harness.drain(None, start=start)
    update = events[1]
    assert (update.action, update.pk) == ("update", 2)
    assert update.before == {"id": 1, "v": 1} and update.after == {"id": 2, "v": 1}


def test_no_pk_skip_warns_once_and_counts(harness: Any, caplog: Any) -> None:
    harness.execute("CREATE TABLE nokey (a INT, b INT)", "CREATE TABLE keyed (id INT PRIMARY KEY)")
    start = harness.end()
    harness.execute("INSERT INTO nokey VALUES (1, 2), (3, 4)", "INSERT INTO keyed VALUES (5)",
                    "INSERT INTO nokey VALUES (5, 6)")
    source = harness.source(start=start)
    context = harness.context()
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        events = [e for b in source.stream(None, context, once=True) for e in b.events]
    assert [(e.table, e.pk) for e in events] == [("keyed", 5)]
    warnings = [r.getMessage() for r in caplog.records if "no primary key" in r.getMessage()]
    assert len(warnings) == 1 and f"{harness.db.name}.nokey" in warnings[0]
    assert context.metrics.failures[("source", "no_pk_skipped")] == 3


def test_truncate_warns_only_for_followed_tables_with_their_schema(
    harness: Any, caplog: Any
) -> None:
    db = harness.db.name
    harness.execute("CREATE TABLE kept (id INT PRIMARY KEY)",
                    "CREATE TABLE other (id INT PRIMARY KEY)")
    start = harness.end()
    harness.execute("TRUNCATE TABLE kept", "TRUNCATE other", f"TRUNCATE `{db}`.`kept`")
    source = harness.source(start=start, tables=[f"{db}.kept"])
    context = harness.context()
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        for _ in source.stream(None, context, once=True):
            pass
    warnings = [r.getMessage() for r in caplog.records if "TRUNCATE" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert all(f"TRUNCATE of {db}.kept removes its rows" in w for w in warnings)
    assert context.metrics.failures[("source", "truncate_not_delivered")] == 2


def test_no_pk_row_keys_by_the_whole_visible_row(harness: Any) -> None:
    harness.execute("CREATE TABLE nokey (a INT, secret VARCHAR(5), b INT)")
    start = harness.end()
    harness.execute("INSERT INTO nokey VALUES (1, 's', 2)", "UPDATE nokey SET b = 3",
                    "DELETE FROM nokey")
    events, _ = harness.drain(
        None, start=start, no_pk="row",
        columns={f"{harness.db.name}.nokey": {"exclude": ["secret"]}},
    )
    assert [(e.action, e.pk) for e in events] == [
        ("write", (1, 2)), ("update", (1, 3)), ("delete", (1, 3))
    ]


def test_tables_and_columns_filtered_out_never_reach_sinks(harness: Any) -> None:
    db = harness.db.name
    harness.execute(
        "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(10), password_hash VARCHAR(60), "
        "token VARCHAR(10))",
        "CREATE TABLE orders (id INT PRIMARY KEY, total INT)",
        "CREATE TABLE order_items (id INT PRIMARY KEY, qty INT)",
        "CREATE TABLE order_audit (id INT PRIMARY KEY, note VARCHAR(10))",
        "CREATE TABLE other (id INT PRIMARY KEY)",
    )
    start = harness.end()
    harness.transaction(
        "INSERT INTO users VALUES (1, 'ann', 'hash!', 'tok')",
        "INSERT INTO orders VALUES (1, 10)", "INSERT INTO order_items VALUES (1, 2)",
        "INSERT INTO order_audit VALUES (1, 'x')", "INSERT INTO other VALUES (1)",
    )
    harness.execute("UPDATE users SET password_hash = 'new!', name = 'anne'")
    events, _ = harness.drain(
        None, start=start, tables=[f"{db}.users", f"{db}.order*"],
        exclude_tables=[f"{db}.*_audit"],
        columns={f"{db}.users": {"exclude": ["password_hash"]},
                 f"{db}.user?": {"include": ["id", "name", "password_hash"]}},
    )
    assert [(e.table, e.action) for e in events] == [
        ("users", "write"), ("orders", "write"), ("order_items", "write"), ("users", "update"),
    ]
    assert events[0].after == {"id": 1, "name": "ann"}
    assert events[3].before == {"id": 1, "name": "ann"}
    assert events[3].after == {"id": 1, "name": "anne"}
    assert all("hash" not in repr(e) and "tok" not in repr(e) for e in events)


def test_rows_of_excluded_tables_are_not_decoded(
    harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spy on the row decoder (the real one still runs) records the tables."""
    harness.execute("CREATE TABLE wanted (id INT PRIMARY KEY)",
                    "CREATE TABLE unwanted (id INT PRIMARY KEY, blob_col TEXT)")
    start = harness.end()
    harness.execute("INSERT INTO unwanted VALUES (1, REPEAT('x', 1000)), (2, 'y')",
                    "INSERT INTO wanted VALUES (1)")
    decoded: list[str] = []
    original = TableDecoder.decode

    def spy(self: TableDecoder, *args: Any) -> list[Any]:
        decoded.append(self.table.table)
        return original(self, *args)

    monkeypatch.setattr(TableDecoder, "decode", spy)
    events, _ = harness.drain(None, start=start, tables=[f"{harness.db.name}.wanted"])
    assert [(e.table, e.pk) for e in events] == [("wanted", 1)]
    assert decoded == ["wanted"]
    decoded.clear()
    harness.drain(None, start=start, tables=[f"{harness.db.name}.*"],
                  exclude_tables=[f"{harness.db.name}.unwanted"])
    assert decoded == ["wanted"]


def test_event_metadata_sequence_txid_and_commit_time(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.end()
    before = datetime.now(UTC).replace(microsecond=0)
    harness.transaction("INSERT INTO t VALUES (1), (2), (3)", "INSERT INTO t VALUES (4)")
    harness.execute("FLUSH BINARY LOGS")
    harness.execute("INSERT INTO t VALUES (5)")
    events, _ = harness.drain(None, start=start)
    sequences = [e.sequence for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == 5
    assert all(isinstance(s, int) and 0 < s < 2**63 for s in sequences)
    assert sequences[4] >> 32 == (sequences[0] >> 32) + 1  # the next binlog file
    assert len({e.txid for e in events[:4]}) == 1 and events[4].txid != events[0].txid
    assert all(e.txid and e.txid.count("-") == 2 for e in events)  # MariaDB GTIDs
    assert all(e.committed_at.tzinfo is UTC and e.committed_at >= before for e in events)
    again, _ = harness.drain(None, start=start)
    assert [e.sequence for e in again] == sequences  # stable across re-delivery


def test_json_nested_deeper_than_python_decodes_arrives_as_text(
    harness: Any, caplog: Any
) -> None:
    """MariaDB's json_valid allows 32 levels; with check_constraint_checks off, 5,000 get
    in. Such a value arrives as its text with a warning (as JSON that is not valid does),
    between rows decoded as usual; the stream does not stop on it."""
    harness.execute("CREATE TABLE j (id INT PRIMARY KEY, js JSON)")
    deep = "[" * 5000 + "]" * 5000
    harness.transaction("INSERT INTO j VALUES (1, '[1]')",
                        "SET SESSION check_constraint_checks = 0",
                        f"INSERT INTO j VALUES (2, '{deep}')",
                        "INSERT INTO j VALUES (3, '{\"a\": 3}')")
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        events, _ = harness.drain()
    assert [(e.pk, e.after["js"] if e.after else None) for e in events] == [
        (1, [1]), (2, deep), (3, {"a": 3})]
    assert any("nested deeper than Python can decode" in r.getMessage() for r in caplog.records)
