"""Debezium's schema change record, built from a :class:`~meepo_core.SchemaChange`: the whole
key and value compared with the record Debezium 3.6's MySQL connector writes, worked out by
hand from its source (``SchemaFactory``, ``ConnectTableChangeSerializer``,
``EventDispatcher``, ``ColumnDefinitionParserListener``) for the same table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from meepo_kafka.debezium_schema_changes import (
    column_document,
    display_widths,
    schema_change_record,
    statement_text,
    table_changes,
    truncate_record,
)

from meepo_core import ColumnDefinition, SchemaChange, TableDefinition

STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
STAMP_MS = 1767323045000
DDL = "ALTER TABLE items ADD note varchar(20) AFTER name"

#: ``items`` as MariaDB's information_schema states it, after DDL.
ITEMS = TableDefinition(
    (
        ColumnDefinition("id", "int(11)", False, auto_increment=True),
        ColumnDefinition("name", "varchar(40)", False, "'x'", charset="utf8mb4",
                         comment="the name"),
        ColumnDefinition("note", "varchar(20)", True, charset="utf8mb4"),
        ColumnDefinition("price", "decimal(10,2) unsigned", True, "0.00"),
        ColumnDefinition("size", "enum('s','m','it''s')", True, charset="latin1"),
        ColumnDefinition("tags", "set('a','b')", True, charset="utf8mb4"),
        ColumnDefinition("stamp", "timestamp(3)", False, "current_timestamp(3)",
                         on_update="current_timestamp(3)"),
        ColumnDefinition("raw", "blob", True),
        ColumnDefinition("z", "int(10) unsigned zerofill", True, "uuid()"),
    ),
    ("id",), charset="utf8mb4", comment="all items",
)


def change(kind: Any = "alter", **more: Any) -> SchemaChange:
    fields: dict[str, Any] = {"before": None, "after": ITEMS, "ddl": DDL,
                              "position": {"file": "mysql-bin.000003", "pos": 570},
                              "committed_at": STAMP, "txid": "0-1-42", "sequence": 99}
    return SchemaChange("shop", "items", kind, **{**fields, **more})


def column(name: str, jdbc: int, type_name: str, position: int, **more: Any) -> dict[str, Any]:
    return {"name": name, "jdbcType": jdbc, "nativeType": None, "typeName": type_name,
            "typeExpression": type_name, "charsetName": None, "length": None, "scale": None,
            "position": position, "optional": True, "autoIncremented": False,
            "generated": False, "comment": None, "defaultValueExpression": None,
            "enumValues": None, **more}


EXPECTED_COLUMNS = [
    column("id", 4, "INT", 1, length=11, optional=False, autoIncremented=True,
           generated=True),
    column("name", 12, "VARCHAR", 2, charsetName="utf8mb4", length=40, optional=False,
           comment="the name", defaultValueExpression="x"),
    column("note", 12, "VARCHAR", 3, charsetName="utf8mb4", length=20),
    column("price", 3, "DECIMAL UNSIGNED", 4, length=10, scale=2,
           defaultValueExpression="0.00"),
    column("size", 1, "ENUM", 5, charsetName="latin1", length=1,
           enumValues=["'s'", "'m'", "'it''s'"]),
    column("tags", 1, "SET", 6, charsetName="utf8mb4", length=3, enumValues=["'a'", "'b'"]),
    column("stamp", 2014, "TIMESTAMP", 7, length=3, optional=False, autoIncremented=True,
           generated=True, defaultValueExpression="1970-01-01 00:00:00"),
    column("raw", 2004, "BLOB", 8),
    column("z", 4, "INT UNSIGNED ZEROFILL", 9, length=10),
]

EXPECTED_SOURCE = {
    "version": "v", "connector": "mysql", "name": "dbz", "ts_ms": STAMP_MS,
    "snapshot": "false", "db": "shop", "sequence": None, "ts_us": STAMP_MS * 1000,
    "ts_ns": STAMP_MS * 1_000_000, "table": "items", "server_id": 1, "gtid": "0-1-42",
    "file": "mysql-bin.000003", "pos": 570, "row": 0, "thread": None, "query": None,
}


def f(name: str, kind: str, optional: bool) -> dict[str, Any]:
    return {"type": kind, "optional": optional, "field": name}


def strings(name: str, optional: bool) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "optional": False},
            "optional": optional, "field": name}


COLUMN = {"type": "struct", "fields": [
    f("name", "string", False), f("jdbcType", "int32", False), f("nativeType", "int32", True),
    f("typeName", "string", False), f("typeExpression", "string", True),
    f("charsetName", "string", True), f("length", "int32", True), f("scale", "int32", True),
    f("position", "int32", False), f("optional", "boolean", True),
    f("autoIncremented", "boolean", True), f("generated", "boolean", True),
    f("comment", "string", True), f("defaultValueExpression", "string", True),
    strings("enumValues", True)],
    "optional": False, "name": "io.debezium.connector.schema.Column", "version": 1}
SOURCE = {"type": "struct", "fields": [
    f("version", "string", False), f("connector", "string", False), f("name", "string", False),
    f("ts_ms", "int64", False),
    {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
     "parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,"
                               "last,false,incremental"}, "default": "false",
     "field": "snapshot"},
    f("db", "string", False), f("sequence", "string", True), f("ts_us", "int64", True),
    f("ts_ns", "int64", True), f("table", "string", True), f("server_id", "int64", False),
    f("gtid", "string", True), f("file", "string", False), f("pos", "int64", False),
    f("row", "int32", False), f("thread", "int64", True), f("query", "string", True)],
    "optional": False, "name": "io.debezium.connector.mysql.Source", "version": 1,
    "field": "source"}
VALUE_SCHEMA = {"type": "struct", "fields": [
    SOURCE, f("ts_ms", "int64", False), f("databaseName", "string", True),
    f("schemaName", "string", True), f("ddl", "string", True),
    {"type": "array", "items": {"type": "struct", "fields": [
        f("type", "string", False), f("id", "string", False),
        {"type": "struct", "fields": [
            f("defaultCharsetName", "string", True), strings("primaryKeyColumnNames", True),
            {"type": "array", "items": COLUMN, "optional": False, "field": "columns"},
            f("comment", "string", True)],
         "optional": True, "name": "io.debezium.connector.schema.Table", "version": 1,
         "field": "table"}],
        "optional": False, "name": "io.debezium.connector.schema.Change", "version": 1},
     "optional": False, "field": "tableChanges"}],
    "optional": False, "name": "io.debezium.connector.mysql.SchemaChangeValue", "version": 1}
KEY_SCHEMA = {"type": "struct", "fields": [f("databaseName", "string", False)],
              "optional": False, "name": "io.debezium.connector.mysql.SchemaChangeKey",
              "version": 1}


def record(the_change: SchemaChange, schemas: bool = True) -> tuple[Any, Any]:
    made = schema_change_record(the_change, "dbz", version="v", schemas=schemas, now_ms=7)
    assert made is not None
    return json.loads(made[0]), json.loads(made[1])


def test_an_alter_is_debeziums_record_key_value_and_schemas_in_order() -> None:
    key, value = record(change())
    assert key == {"schema": KEY_SCHEMA, "payload": {"databaseName": "shop"}}
    assert value["schema"] == VALUE_SCHEMA
    assert value["payload"] == {
        "source": EXPECTED_SOURCE, "ts_ms": 7, "databaseName": "shop", "schemaName": None,
        "ddl": DDL,
        "tableChanges": [{"type": "ALTER", "id": '"shop"."items"', "table": {
            "defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["id"],
            "columns": EXPECTED_COLUMNS, "comment": "all items"}}],
    }
    # field order is the schema's, as the JSON converter writes a Struct
    assert list(value["payload"]) == [field["field"] for field in VALUE_SCHEMA["fields"]]
    assert list(value["payload"]["source"]) == [field["field"] for field in SOURCE["fields"]]
    assert list(value["payload"]["tableChanges"][0]["table"]["columns"][0]) == [
        field["field"] for field in COLUMN["fields"]]


def test_without_schemas_the_payloads_alone() -> None:
    key, value = record(change(), schemas=False)
    assert key == {"databaseName": "shop"}
    assert set(value) == {"source", "ts_ms", "databaseName", "schemaName", "ddl",
                          "tableChanges"}


def test_kinds_map_to_debeziums_change_types() -> None:
    def types(the_change: SchemaChange) -> list[tuple[str, str, bool]]:
        return [(c["type"], c["id"], c["table"] is not None)
                for c in record(the_change, schemas=False)[1]["tableChanges"]]

    assert types(change("create")) == [("CREATE", '"shop"."items"', True)]
    assert types(change("rename", renamed_from=("shop", "old"))) == [
        ("ALTER", '"shop"."items"', True)]
    assert types(change("create", renamed_from=("shop", "old"))) == [
        ("ALTER", '"shop"."items"', True)]
    assert types(change("describe")) == [("CREATE", '"shop"."items"', True)]
    assert types(change("describe", before=ITEMS)) == [("ALTER", '"shop"."items"', True)]
    assert types(change("drop", before=ITEMS, after=None)) == [
        ("DROP", '"shop"."items"', False)]
    database = SchemaChange("shop", "", "create_database", ddl="CREATE DATABASE shop",
                            position={"file": "f.000001", "pos": 4}, committed_at=STAMP)
    key, value = record(database, schemas=False)
    assert key == {"databaseName": "shop"}
    assert (value["tableChanges"], value["ddl"], value["source"]["table"]) == (
        [], "CREATE DATABASE shop", None)


def test_postgres_changes_and_truncates_are_no_schema_change_records() -> None:
    postgres = change(position={"lsn": "0/16B3748"})
    assert schema_change_record(postgres, "dbz", version="v") is None
    assert schema_change_record(change(position=None), "dbz", version="v") is None
    assert schema_change_record(change("truncate"), "dbz", version="v") is None
    value = truncate_record(change("truncate"), "dbz", version="v", now_ms=7)
    assert value is not None
    truncate = json.loads(value)
    assert (truncate["op"], truncate["before"], truncate["after"], truncate["ts_ms"]) == (
        "t", None, None, 7)
    assert truncate["source"]["table"] == "items" and truncate["source"]["pos"] == 570


def test_mysql_8_spellings() -> None:
    """MySQL 8 writes integer types without a display width and string defaults unquoted."""
    assert column_document(ColumnDefinition("n", "int", False), 1)["length"] is None
    assert column_document(ColumnDefinition("d", "decimal(10,0)"), 1)["scale"] == 0
    assert column_document(ColumnDefinition("s", "varchar(5)", default="abc",
                                            charset="utf8mb4"), 1)[
        "defaultValueExpression"] == "abc"
    assert column_document(ColumnDefinition("j", "json"), 1)["jdbcType"] == 1111
    assert column_document(ColumnDefinition("b", "bit(1)"), 1)["length"] == 1
    assert column_document(ColumnDefinition("t", "datetime(6)"), 1)["length"] == 6


def test_the_ddl_is_the_statement_without_the_comments_around_it() -> None:
    assert statement_text("DROP TABLE `t` /* generated by server */") == "DROP TABLE `t`"
    assert statement_text("/* a tool */ ALTER TABLE t ADD c int;") == "ALTER TABLE t ADD c int"
    assert statement_text("-- why\nCREATE TABLE t (a int)") == "CREATE TABLE t (a int)"
    kept = "CREATE TABLE t (a int) /*!50100 PARTITION BY HASH (a) */"
    assert statement_text(kept) == kept  # a version comment is part of the statement
    assert statement_text(None) is None


def test_the_debezium_format_reads_a_schema_change_record_as_not_a_row_change() -> None:
    from meepo_kafka.debezium import DebeziumFormat, NotARowChange

    for schemas in (True, False):
        made = schema_change_record(change(), "dbz", version="v", schemas=schemas)
        assert made is not None
        try:
            DebeziumFormat("dbz").decode(made[0], made[1], None)
        except NotARowChange as exc:
            assert str(exc) == "schema change"
        else:
            raise AssertionError("decoded a schema change record as a row change")


GOLDEN = Path(__file__).parent / "golden" / "mysql_schema_changes.jsonl"


@pytest.mark.skipif(not GOLDEN.exists(),
                    reason="no recording of Debezium's MySQL schema change records yet "
                           "(tests/golden/mysql_schema_changes.jsonl)")
def test_the_schemas_equal_those_debezium_recorded() -> None:
    """The key and value schemas do not depend on the workload: each schema change record
    Debezium wrote (with ``schemas.enable``) has exactly the schemas meepo writes, and its
    payload the same fields in the same order."""
    records = [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]
    theirs = [(json.loads(r["key"]), json.loads(r["value"])) for r in records
              if r.get("value") and "SchemaChangeValue" in r["value"]]
    if not theirs:
        pytest.skip(f"{GOLDEN.name} holds no schema change record")
    key, value = record(change())
    for their_key, their_value in theirs:
        if "schema" not in their_value:
            continue  # recorded without schemas: only the payload's fields compare
        assert their_key["schema"] == key["schema"]
        assert their_value["schema"] == value["schema"]
        assert list(their_value["payload"]) == list(value["payload"])
        assert list(their_value["payload"]["source"]) == list(value["payload"]["source"])


def test_display_widths_follow_the_statements_as_debeziums_parser() -> None:
    """``later`` of the MySQL golden workload: Debezium 3.6.3 recorded ``id`` (``INT`` in
    the CREATE) without a length in the CREATE's record and in the next ALTER's, the
    ALTER's DECIMAL(5, 1) with its length and scale, the default as text; MariaDB's
    information_schema says ``int(11)`` throughout."""
    created = TableDefinition((ColumnDefinition("id", "int(11)", False),
                               ColumnDefinition("note", "varchar(10)", charset="utf8mb4")),
                              ("id",), charset="utf8mb4")
    altered = TableDefinition((*created.columns,
                               ColumnDefinition("extra", "decimal(5,1)", False, "2.5")),
                              ("id",), charset="utf8mb4")
    where = {"position": {"file": "binlog.000001", "pos": 13804}, "committed_at": STAMP}
    create = SchemaChange("inv", "later", "create", None, created,
                          ddl="CREATE TABLE later (id INT PRIMARY KEY, note VARCHAR(10))",
                          **where)
    alter = SchemaChange("inv", "later", "alter", created, altered,
                         ddl="ALTER TABLE later ADD COLUMN extra DECIMAL(5, 1) NOT NULL "
                             "DEFAULT 2.5", **where)
    recorded_id = column("id", 4, "INT", 1, optional=False)
    recorded_note = column("note", 12, "VARCHAR", 2, charsetName="utf8mb4", length=10)
    recorded_extra = column("extra", 3, "DECIMAL", 3, length=5, scale=1, optional=False,
                            defaultValueExpression="2.5")
    widths = display_widths(create)
    assert widths == {"id": None}
    assert table_changes(create)[0]["table"] == {
        "defaultCharsetName": "utf8mb4", "primaryKeyColumnNames": ["id"],
        "columns": [recorded_id, recorded_note], "comment": None}
    assert table_changes(alter, widths)[0]["table"]["columns"] == [
        recorded_id, recorded_note, recorded_extra]
    # without the table's earlier record, the server's width (as after Debezium's snapshot)
    assert table_changes(alter)[0]["table"]["columns"][0]["length"] == 11
    stated = SchemaChange("inv", "later", "create", None, created,
                          ddl="CREATE TABLE `later` (\n  `id` int(11) NOT NULL)", **where)
    assert display_widths(stated) == {"id": 11}
    spelled = SchemaChange("inv", "later", "create", None, created,
                           ddl="CREATE TABLE later (id INTEGER)", **where)
    assert display_widths(spelled) == {"id": None}


_KEYWORDS = {"NOT", "NULL", "DEFAULT", "CHARACTER", "COLLATE", "CHECK", "AUTO_INCREMENT",
             "COMMENT", "PRIMARY", "UNIQUE", "ON", "GENERATED", "AS", "INVISIBLE"}


def _snapshot_columns(ddl: str) -> list[ColumnDefinition]:
    """The columns of a ``SHOW CREATE TABLE`` text (which spells types as
    information_schema's ``COLUMN_TYPE`` does), charset and nullability included."""
    found = []
    for line in ddl.splitlines():
        line = line.strip().rstrip(",")
        if not line.startswith("`"):
            continue
        name, _, rest = line[1:].partition("`")
        words = rest.split()
        kind: list[str] = []
        for word in words:
            if word.upper() in _KEYWORDS:
                break
            kind.append(word)
        upper = rest.upper()
        charset = None
        if "CHARACTER SET " in upper:
            charset = words[[w.upper() for w in words].index("SET") + 1]
        elif any(t in kind[0] for t in ("char", "text", "enum", "set")):
            charset = "utf8mb4"  # the table's default
        found.append(ColumnDefinition(name, " ".join(kind), "NOT NULL" not in upper,
                                      charset=charset))
    return found


@pytest.mark.skipif(not GOLDEN.exists(),
                    reason="no recording of Debezium's MySQL schema change records yet "
                           "(tests/golden/mysql_schema_changes.jsonl)")
def test_every_snapshot_column_matches_debeziums_record() -> None:
    """For each table Debezium's snapshot recorded (``CREATE TABLE`` from ``SHOW CREATE
    TABLE``), meepo's column documents of the same type spellings equal Debezium's."""
    compared = 0
    for line in GOLDEN.read_text().splitlines():
        payload = json.loads(json.loads(line)["value"] or "null") if line.strip() else None
        payload = payload.get("payload", payload) if isinstance(payload, dict) else None
        if not payload or not payload["ddl"].startswith("CREATE TABLE `"):
            continue
        (table_change,) = payload["tableChanges"]
        theirs = table_change["table"]["columns"]
        mine = [column_document(column, index) for index, column in
                enumerate(_snapshot_columns(payload["ddl"]), 1)]
        for their, my in zip(theirs, mine, strict=True):
            fields = ("name", "jdbcType", "typeName", "typeExpression", "charsetName",
                      "length", "scale", "position", "optional", "enumValues")
            assert {f: my[f] for f in fields} == {f: their[f] for f in fields}
            compared += 1
    assert compared > 40


def test_a_drop_tables_ddl_is_written_per_table_as_debezium_does() -> None:
    """Debezium 3.6.3 recorded ``DROP TABLE later`` (MariaDB logs ``DROP TABLE `later`
    /* generated by server */``) as ``DROP TABLE `inv`.`later```, and ``DROP TABLE IF
    EXISTS a, b`` once per table."""
    def ddl(statement: str, table: str = "later") -> Any:
        dropped = SchemaChange("inv", table, "drop", ITEMS, None, ddl=statement,
                               position={"file": "f.000001", "pos": 4}, committed_at=STAMP)
        return record(dropped, schemas=False)[1]["ddl"]

    assert ddl("DROP TABLE `later` /* generated by server */") == "DROP TABLE `inv`.`later`"
    assert ddl("DROP TABLE IF EXISTS `inv`.`a`,`inv`.`b` /* generated by server */",
               "b") == "DROP TABLE IF EXISTS `inv`.`b`"
    assert ddl("drop table x cascade", "x") == "drop table `inv`.`x` CASCADE"
    assert ddl("RENAME TABLE later TO gone") == "RENAME TABLE later TO gone"
