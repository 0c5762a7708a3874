"""One MySQL/MariaDB table's Debezium messages: :class:`~meepo_kafka.debezium_codec.
TableCodec` with the MySQL connector's type mapping (:mod:`meepo_kafka.debezium_mysql`),
``source`` block and JSON spelling.

Differences from the PostgreSQL codec: an update's ``before`` is always the whole old row
(the binlog's full row image); ``source`` holds the binlog coordinates; ``row`` is the
row's index in its rows event, known from the mysql source's sequence numbers (consecutive
within one rows event); and characters outside the Basic Multilingual Plane are written
as escaped surrogate pairs, as Kafka Connect's JsonConverter writes them.
"""

from __future__ import annotations

from typing import Any

from meepo_core import ColumnDefinition, RowEvent

from .debezium_codec import TableCodec
from .debezium_mysql import MYSQL_SOURCE_SCHEMA, mysql_field_codec, mysql_source
from .debezium_types import FieldCodec, Modes
from .java_json import escape_supplementary


class MySQLTableCodec(TableCodec):
    """Keys, values and headers of one MySQL/MariaDB table definition's messages."""

    connector = "mysql"
    source_schema = MYSQL_SOURCE_SCHEMA
    old_rows_whole = True

    _last_sequence: int | None = None
    _last_row = 0

    def field(self, column: ColumnDefinition, key: bool, modes: Modes) -> FieldCodec:
        return mysql_field_codec(column, key=key, modes=modes,
                                 mariadb=self.definition.dialect == "mariadb")

    def source(self, event: RowEvent) -> dict[str, Any]:
        definition = self.definition
        block = mysql_source(event, self.version, self.server_name, definition.database,
                             definition.table)
        sequence = event.sequence
        if event.action != "read" and sequence is not None:
            last = self._last_sequence
            self._last_row = self._last_row + 1 if last is not None and sequence == last + 1 \
                else 0
            self._last_sequence = sequence
            block["row"] = self._last_row
        return block

    def key(self, pk: Any) -> bytes | None:
        data = super().key(pk)
        return None if data is None else escape_supplementary(data)

    def value(self, event: RowEvent, transaction: dict[str, Any] | None = None) -> bytes:
        return escape_supplementary(super().value(event, transaction))
