"""Schema changes in the Debezium format: the record Debezium's MySQL connector writes on its
schema change topic (``include.schema.changes = true``, its default).

:func:`schema_change_record` turns one :class:`~meepo_core.SchemaChange` into the record's
(key, value) bytes, as Kafka Connect's ``JsonConverter`` writes them (with or without the
schema). The shapes are those of Debezium 3.6 (``SchemaFactory``, ``EventDispatcher``,
``ConnectTableChangeSerializer``, ``BinlogDatabaseSchema``, ``ColumnDefinitionParserListener``):

* topic: the topic prefix (``server_name``), every record on partition 0;
* key: ``{"databaseName": db}``, schema ``io.debezium.connector.mysql.SchemaChangeKey``;
* value (``io.debezium.connector.mysql.SchemaChangeValue``): ``source`` (the MySQL
  connector's block, ``snapshot = "false"``), ``ts_ms`` (when the record was made),
  ``databaseName``, ``schemaName`` (null for MySQL), ``ddl`` (the statement), and
  ``tableChanges``: one ``{type, id, table}`` per table (none for a database statement),
  ``type`` ``CREATE``/``ALTER``/``DROP``, ``id`` ``"db"."table"``, ``table`` the table's
  definition after the change (null for ``DROP``): ``defaultCharsetName``,
  ``primaryKeyColumnNames``, ``columns`` and ``comment``.

meepo's kinds map to Debezium's: ``create`` -> ``CREATE``; ``alter``, ``rename`` and a
table renamed into ``tables`` -> ``ALTER`` with the new name (Debezium's rename);
``describe`` (a statement meepo did not read) -> ``ALTER`` (``CREATE`` when the table was
unknown); ``drop`` -> ``DROP``; ``create_database``/``drop_database`` -> no table change.
A ``truncate`` is not a schema change record in Debezium but a ``"t"`` change event on
the table's topic (:func:`truncate_record`), left out by default
(``skipped_operations = "t"``).

Where the columns come from: meepo reads a changed table's definition from the server
(``information_schema``) after the statement, where Debezium parses the statement. The two
agree except where a statement leaves a part implicit that the server spells out: display
widths (``INT`` is ``int(11)`` on MariaDB; :func:`display_widths` follows the statement
instead), a default written as an expression. Those columns read like Debezium's after
its snapshot, which reads ``SHOW CREATE TABLE``.

PostgreSQL: Debezium's PostgreSQL connector has no schema change topic (logical decoding
carries no DDL); the new shape shows in the ``schema`` of the next change events. meepo
does the same: :func:`schema_change_record` returns None for changes of sources other than
MySQL's (the PostgreSQL and SQLAlchemy sources), and the sink writes nothing for them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from meepo_core import ColumnDefinition, SchemaChange, TableDefinition

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_GTID = re.compile(r"^\d+-\d+-\d+$|^[0-9a-fA-F-]{36}:\d+$")
_MARIADB_GTID = re.compile(r"^\d+-\d+-\d+$")
_OPTIONAL_STRING = {"type": "string", "optional": True}


def _field(name: str, kind: str, optional: bool, **more: Any) -> dict[str, Any]:
    return {"type": kind, "optional": optional, **more, "field": name}


def _string_array(name: str, optional: bool) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "optional": False},
            "optional": optional, "field": name}


#: ``source`` of Debezium's MySQL connector (io.debezium.connector.mysql.Source).
MYSQL_SOURCE_SCHEMA: dict[str, Any] = {
    "type": "struct", "fields": [
        _field("version", "string", False),
        _field("connector", "string", False),
        _field("name", "string", False),
        _field("ts_ms", "int64", False),
        {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
         "parameters": {"allowed": "true,first,first_in_data_collection,"
                                   "last_in_data_collection,last,false,incremental"},
         "default": "false", "field": "snapshot"},
        _field("db", "string", False),
        _field("sequence", "string", True),
        _field("ts_us", "int64", True),
        _field("ts_ns", "int64", True),
        _field("table", "string", True),
        _field("server_id", "int64", False),
        _field("gtid", "string", True),
        _field("file", "string", False),
        _field("pos", "int64", False),
        _field("row", "int32", False),
        _field("thread", "int64", True),
        _field("query", "string", True),
    ],
    "optional": False, "name": "io.debezium.connector.mysql.Source", "version": 1,
    "field": "source",
}

#: io.debezium.connector.schema.Column
COLUMN_SCHEMA: dict[str, Any] = {
    "type": "struct", "fields": [
        _field("name", "string", False),
        _field("jdbcType", "int32", False),
        _field("nativeType", "int32", True),
        _field("typeName", "string", False),
        _field("typeExpression", "string", True),
        _field("charsetName", "string", True),
        _field("length", "int32", True),
        _field("scale", "int32", True),
        _field("position", "int32", False),
        _field("optional", "boolean", True),
        _field("autoIncremented", "boolean", True),
        _field("generated", "boolean", True),
        _field("comment", "string", True),
        _field("defaultValueExpression", "string", True),
        _string_array("enumValues", True),
    ],
    "optional": False, "name": "io.debezium.connector.schema.Column", "version": 1,
}

#: io.debezium.connector.schema.Table (the ``table`` of a change; null for a drop)
TABLE_SCHEMA: dict[str, Any] = {
    "type": "struct", "fields": [
        _field("defaultCharsetName", "string", True),
        _string_array("primaryKeyColumnNames", True),
        {"type": "array", "items": COLUMN_SCHEMA, "optional": False, "field": "columns"},
        _field("comment", "string", True),
    ],
    "optional": True, "name": "io.debezium.connector.schema.Table", "version": 1,
    "field": "table",
}

#: io.debezium.connector.schema.Change
CHANGE_SCHEMA: dict[str, Any] = {
    "type": "struct", "fields": [
        _field("type", "string", False),
        _field("id", "string", False),
        TABLE_SCHEMA,
    ],
    "optional": False, "name": "io.debezium.connector.schema.Change", "version": 1,
}

KEY_SCHEMA: dict[str, Any] = {
    "type": "struct", "fields": [_field("databaseName", "string", False)],
    "optional": False, "name": "io.debezium.connector.mysql.SchemaChangeKey", "version": 1,
}

VALUE_SCHEMA: dict[str, Any] = {
    "type": "struct", "fields": [
        MYSQL_SOURCE_SCHEMA,
        _field("ts_ms", "int64", False),
        _field("databaseName", "string", True),
        _field("schemaName", "string", True),
        _field("ddl", "string", True),
        {"type": "array", "items": CHANGE_SCHEMA, "optional": False, "field": "tableChanges"},
    ],
    "optional": False, "name": "io.debezium.connector.mysql.SchemaChangeValue", "version": 1,
}

_KEY_SCHEMA_JSON = orjson.Fragment(orjson.dumps(KEY_SCHEMA))
_VALUE_SCHEMA_JSON = orjson.Fragment(orjson.dumps(VALUE_SCHEMA))

# -- columns -------------------------------------------------------------------------------

#: java.sql.Types of the MySQL types, as Debezium's MySQL DDL parser resolves them.
_JDBC: dict[str, int] = {
    "char": 1, "varchar": 12, "tinytext": 12, "text": 12, "mediumtext": 12, "longtext": 12,
    "long": 12, "nchar": -15, "nvarchar": -9,
    "tinyint": 5, "smallint": 5, "mediumint": 4, "int": 4, "integer": 4, "bigint": -5,
    "year": 4, "real": 7, "double": 8, "double precision": 8, "float": 6, "decimal": 3,
    "numeric": 2, "fixed": 3, "dec": 3, "bit": -7, "time": 92, "timestamp": 2014,
    "datetime": 93, "date": 91, "binary": -2, "varbinary": -3, "blob": 2004,
    "tinyblob": 2004, "mediumblob": 2004, "longblob": 2004, "bool": 16, "boolean": 16,
    "serial": -5, "enum": 1, "set": 1,
}
#: Types Debezium's parser gives a default length (and scale) when the DDL has none.
_DEFAULT_DIMENSION: dict[str, tuple[int, int | None]] = {
    "decimal": (10, 0), "numeric": (10, 0), "fixed": (10, 0), "dec": (10, 0), "bit": (1, None),
}
#: ``column_document``'s default length: the one in the column's type.
_FROM_TYPE: Any = object()
#: Types whose ``information_schema`` spelling has a display width the statement may lack.
_WIDTH_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"}
_OTHER = 1111  # java.sql.Types.OTHER: spatial types, JSON, and what the parser does not know
_CHARACTER_TYPES = {1, 12, -15, -9}  # CHAR, VARCHAR, NCHAR, NVARCHAR: they have a charset
_TYPE = re.compile(r"^\s*([a-z][a-z ]*?)\s*(?:\((.*)\))?((?:\s+(?:signed|unsigned|zerofill))*)"
                   r"\s*$", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(r"'(?:[^'\\]|''|\\.)*'")
_NOW = re.compile(r"^(?:current_timestamp|now|localtime|localtimestamp)\s*(?:\(\s*\d*\s*\))?$",
                  re.IGNORECASE)


def _type_parts(column: ColumnDefinition) -> tuple[str, str, str]:
    """(base type in lower case, what is between the parentheses, modifiers in upper case)
    of a MySQL ``COLUMN_TYPE`` such as ``int(10) unsigned zerofill``."""
    found = _TYPE.match(column.type)
    if found is None:
        return column.type.strip().lower(), "", ""
    modifiers = found.group(3).upper().split()
    if "ZEROFILL" in modifiers:  # Debezium writes ZEROFILL as UNSIGNED ZEROFILL
        suffix = " UNSIGNED ZEROFILL"
    elif modifiers:
        suffix = " " + modifiers[-1]
    else:
        suffix = ""
    return found.group(1).lower(), found.group(2) or "", suffix


def _default_expression(column: ColumnDefinition) -> str | None:
    """Debezium's ``defaultValueExpression``: a literal without its quotes, ``1970-01-01
    00:00:00`` for ``CURRENT_TIMESTAMP`` (Debezium's stand-in), null for NULL and for
    other expressions."""
    default = column.default
    if default is None or default.upper() == "NULL":
        return None
    if len(default) >= 2 and default[0] == default[-1] == "'":
        return default[1:-1]
    if _NOW.match(default):
        return "1970-01-01 00:00:00"
    if re.match(r"^[+-]?(?:\d+\.?\d*(?:e[+-]?\d+)?|\.\d+)$", default, re.IGNORECASE):
        return default
    if re.match(r"^b'[01]*'$", default, re.IGNORECASE):
        return default[2:-1]
    if "(" in default or " " in default:
        return None  # an expression default: Debezium's parser writes none
    return default  # MySQL 8 writes string defaults unquoted


def column_document(column: ColumnDefinition, position: int,
                    length: int | None = _FROM_TYPE) -> dict[str, Any]:
    """One ``io.debezium.connector.schema.Column`` (``position`` counts from 1);
    ``length``, when given, replaces the length read from the type (see
    :func:`display_widths`)."""
    base, inside, suffix = _type_parts(column)
    jdbc = _JDBC.get(base, _OTHER)
    type_name = base.upper() + suffix
    parsed_length: int | None = None
    scale: int | None = None
    enum_values: list[str] | None = None
    if base in ("enum", "set"):
        enum_values = _QUOTED.findall(inside)
        parsed_length = max(0, len(enum_values) * 2 - 1) if base == "set" else 1
    elif inside:
        numbers = [part.strip() for part in inside.split(",")]
        if numbers[0].isdigit():
            parsed_length = int(numbers[0])
        if len(numbers) > 1 and numbers[1].isdigit():
            scale = int(numbers[1])
    if parsed_length is None and base in _DEFAULT_DIMENSION:
        parsed_length, scale = _DEFAULT_DIMENSION[base]
    if base == "nchar" and parsed_length is None:
        parsed_length = 1
    if length is _FROM_TYPE:
        length = parsed_length
    charset = column.charset if jdbc in _CHARACTER_TYPES else None
    if jdbc in (-15, -9):
        charset = "utf8"  # Debezium's parser sets utf8 for the national types
    generated = column.auto_increment or column.on_update is not None
    return {
        "name": column.name,
        "jdbcType": jdbc,
        "nativeType": None,
        "typeName": type_name,
        "typeExpression": type_name,
        "charsetName": charset,
        "length": length,
        "scale": scale,
        "position": position,
        "optional": column.nullable,
        "autoIncremented": generated,
        "generated": generated,
        "comment": column.comment,
        "defaultValueExpression": _default_expression(column),
        "enumValues": enum_values,
    }


def table_document(definition: TableDefinition,
                   lengths: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """One ``io.debezium.connector.schema.Table``; ``lengths`` replace the lengths of the
    columns they name (:func:`display_widths`)."""
    lengths = lengths or {}
    return {
        "defaultCharsetName": definition.charset,
        "primaryKeyColumnNames": list(definition.key_columns),
        "columns": [column_document(column, index, lengths.get(column.name, _FROM_TYPE))
                    for index, column in enumerate(definition.columns, 1)],
        "comment": definition.comment,
    }


def _table_id(database: str, table: str) -> str:
    return f'"{database}"."{table}"'


def display_widths(change: SchemaChange,
                   earlier: Mapping[str, int | None] | None = None) -> dict[str, int | None]:
    """The ``length`` Debezium's parser gives each integer (and ``YEAR``) column of
    ``change.after``. MariaDB's ``information_schema`` always states a display width
    (``int(11)``); Debezium's parser has one only where a statement wrote it. So: the
    width when the statement writes the column's type with one, none when it writes the
    type without (``id INT``), else the length this table's last record gave the column
    (``earlier``), else the server's width (what Debezium states after its snapshot of
    ``SHOW CREATE TABLE``, which writes every width)."""
    after = change.after
    if after is None:
        return {}
    ddl = change.ddl or ""
    earlier = earlier or {}
    widths: dict[str, int | None] = {}
    for column in after.columns:
        base, inside, _suffix = _type_parts(column)
        if base not in _WIDTH_TYPES:
            continue
        spelled = "int(?:eger)?" if base == "int" else base
        stated = re.search(rf"(?:^|[\s,(`]){re.escape(column.name)}`?\s+{spelled}\b\s*(\()?",
                           ddl, re.IGNORECASE)
        if stated is not None:
            widths[column.name] = int(inside) if stated.group(1) and inside.isdigit() \
                else None
        else:
            widths[column.name] = earlier.get(column.name,
                                              int(inside) if inside.isdigit() else None)
    return widths


def table_changes(change: SchemaChange,
                  earlier: Mapping[str, int | None] | None = None) -> list[dict[str, Any]]:
    """The ``tableChanges`` of ``change`` (see the module docstring for the kinds);
    ``earlier`` as for :func:`display_widths`."""
    kind = change.kind
    if kind in ("create_database", "drop_database", "truncate"):
        return []
    table_id = _table_id(change.schema, change.table)
    if kind == "drop":
        return [{"type": "DROP", "id": table_id, "table": None}]
    created = ((kind == "create" and change.renamed_from is None)
               or (kind == "describe" and change.before is None))
    kind_name = "CREATE" if created else "ALTER"
    after = change.after
    return [{"type": kind_name, "id": table_id,
             "table": table_document(after, display_widths(change, earlier))
             if after is not None else None}]


# -- the record ----------------------------------------------------------------------------


def statement_text(ddl: str | None) -> str | None:
    """The statement as Debezium's parser quotes it: from its first token to its last,
    without the comments around it (``DROP TABLE `t` /* generated by server */``, as
    MariaDB logs a ``DROP TABLE``) or a final ``;``."""
    if ddl is None:
        return None
    text = ddl.strip()
    while True:
        if text.startswith("/*") and not text.startswith("/*!") and "*/" in text:
            text = text[text.index("*/") + 2:].lstrip()
        elif text.startswith(("--", "#")):
            text = text.partition("\n")[2].lstrip()
        elif (text.endswith("*/") and "/*" in text[1:]
              and not text.startswith("/*!", text.rindex("/*"))):  # /*! ... */ runs
            text = text[:text.rindex("/*")].rstrip()
        elif text.endswith(";"):
            text = text[:-1].rstrip()
        else:
            return text


_DROP_TABLE = re.compile(r"^(DROP\s+(?:TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?)",
                         re.IGNORECASE)
_DROP_TYPE = re.compile(r"\s(RESTRICT|CASCADE)\s*$", re.IGNORECASE)


def record_ddl(change: SchemaChange) -> str | None:
    """The record's ``ddl``: the statement as Debezium's parser quotes it
    (:func:`statement_text`), except for a ``DROP TABLE``, which Debezium writes once per
    table as the statement's words before the table list and the table's quoted name
    (``DROP TABLE IF EXISTS `db`.`t```), then ``RESTRICT`` or ``CASCADE`` if written."""
    text = statement_text(change.ddl)
    if text is None or change.kind != "drop":
        return text
    words = _DROP_TABLE.match(text)
    if words is None:
        return text  # a table renamed out of `tables`, say
    drop_type = _DROP_TYPE.search(text)
    return (f"{words.group(1)}`{change.schema}`.`{change.table}`"
            + (f" {drop_type.group(1).upper()}" if drop_type else ""))


def is_binlog_change(change: SchemaChange) -> bool:
    """Whether ``change`` comes from a MySQL/MariaDB binlog (its position names a file and
    an offset), the only source Debezium writes schema change records for."""
    position = change.position
    return isinstance(position, dict) and "file" in position and "pos" in position


def mysql_source(change: SchemaChange, server_name: str, version: str) -> dict[str, Any]:
    """The MySQL connector's ``source`` block of a schema change record: ``ts_*`` the
    statement's time (whole seconds, as the binlog keeps it), ``server_id`` the server's
    part of a MariaDB GTID (0 without one), as on the mysql source's rows."""
    ms = (change.committed_at - _EPOCH) // _MICROSECOND // 1_000_000 * 1000
    position = change.position if isinstance(change.position, dict) else {}
    gtid = change.txid if change.txid and _GTID.match(change.txid) else None
    server_id = int(gtid.split("-")[1]) if gtid and _MARIADB_GTID.match(gtid) else 0
    return {
        "version": version, "connector": "mysql", "name": server_name,
        "ts_ms": ms, "snapshot": "false", "db": change.schema,
        "sequence": None, "ts_us": ms * 1000, "ts_ns": ms * 1_000_000,
        "table": change.table or None, "server_id": server_id, "gtid": gtid,
        "file": str(position.get("file", "")), "pos": int(position.get("pos", 0)), "row": 0,
        "thread": None, "query": None,
    }


def schema_change_record(change: SchemaChange, server_name: str, *, version: str,
                         schemas: bool = True, now_ms: int | None = None,
                         earlier: Mapping[str, int | None] | None = None,
                         ) -> tuple[bytes, bytes] | None:
    """(key, value) of the schema change record Debezium's MySQL connector writes for
    ``change`` on topic ``server_name``, as the JSON converter writes them (``schemas``:
    ``schemas.enable``); ``now_ms`` is the record's ``ts_ms`` (default: now), ``earlier``
    the integer columns' lengths in the table's last record (:func:`display_widths`). None
    when
    Debezium writes no such record: a change of another source (PostgreSQL, SQLAlchemy)
    or a ``truncate`` (a change event, :func:`truncate_record`)."""
    if not is_binlog_change(change) or change.kind == "truncate":
        return None
    key = {"databaseName": change.schema}
    value = {
        "source": mysql_source(change, server_name, version),
        "ts_ms": time.time_ns() // 1_000_000 if now_ms is None else now_ms,
        "databaseName": change.schema,
        "schemaName": None,
        "ddl": record_ddl(change),
        "tableChanges": table_changes(change, earlier),
    }
    if schemas:
        return (orjson.dumps({"schema": _KEY_SCHEMA_JSON, "payload": key}),
                orjson.dumps({"schema": _VALUE_SCHEMA_JSON, "payload": value}))
    return orjson.dumps(key), orjson.dumps(value)


def truncate_record(change: SchemaChange, server_name: str, *, version: str,
                    now_ms: int | None = None, envelope: Any = None,
                    schemas: bool = True) -> bytes | None:
    """The value of the ``"t"`` change event Debezium's MySQL connector writes for a
    ``TRUNCATE`` on the table's topic (key null); None for a change that is not a binlog
    truncate. ``envelope`` is the JSON converter's schema of the table's change events
    (``TableCodec.value_schema``) when its rows are written with one: the event then has
    their shape (with the schema if ``schemas``); without it, the schemaless envelope
    meepo writes rows without column definitions in."""
    if change.kind != "truncate" or not is_binlog_change(change):
        return None
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    source = mysql_source(change, server_name, version)
    if envelope is not None:
        payload = {"before": None, "after": None, "source": source, "transaction": None,
                   "op": "t", "ts_ms": now, "ts_us": now * 1000, "ts_ns": now * 1_000_000}
        if schemas:
            return orjson.dumps({"schema": envelope, "payload": payload})
        return orjson.dumps(payload)
    for name in ("sequence", "ts_us", "ts_ns"):  # as the rows' schemaless source
        del source[name]
    return orjson.dumps({"before": None, "after": None, "source": source, "op": "t",
                         "ts_ms": now, "transaction": None})


def context_headers(server_name: str, run_id: str,
                    schemas: bool) -> list[tuple[str, str | bytes | None]]:
    """Debezium's ``__debezium.context.*`` headers of a MySQL connector's record."""
    def string(text: str) -> bytes:
        if schemas:
            return orjson.dumps({"schema": {"type": "string", "optional": False},
                                 "payload": text})
        return orjson.dumps(text)

    return [("__debezium.context.connectorLogicalName", string(server_name)),
            ("__debezium.context.taskId", string("0")),
            ("__debezium.context.connectorName", string("mysql")),
            ("__debezium.context.runId", string(run_id))]
