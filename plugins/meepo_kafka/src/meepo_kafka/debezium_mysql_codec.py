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
    escape = staticmethod(escape_supplementary)

    _last_sequence: int | None = None
    _last_row = 0

    def field(self, column: ColumnDefinition, key: bool, modes: Modes) -> FieldCodec:
        return mysql_field_codec(column, key=key, modes=modes,
                                 mariadb=self.definition.dialect == "mariadb")

    def source(self, event: RowEvent) -> dict[str, Any]:
        block = self._block(event)
        sequence = event.sequence
        if event.action != "read" and sequence is not None:
            block["row"] = self._next_row(sequence)
        return block

    def _varying(self, event: RowEvent) -> tuple[Any, ...] | None:
        position = event.position
        sequence = event.sequence
        if event.action == "read" or sequence is None or type(position) is not dict:
            return None
        pos = position.get("pos", 0)
        if type(pos) is not int or not 0 <= pos < 1 << 63:  # binlog offsets are far below
            return None
        # The events of one transaction share its commit time, GTID and (mostly) binlog
        # file: the rest of the block is written once per transaction.
        key = (event.committed_at, event.txid, position.get("file", ""))
        if key != self._source_key:
            self._tail = self._tail_template(self._block(event), _VARYING)
            self._source_key = key
        return (pos, self._next_row(sequence))

    def _block(self, event: RowEvent) -> dict[str, Any]:
        definition = self.definition
        return mysql_source(event, self.version, self.server_name, definition.database,
                            definition.table)

    def _next_row(self, sequence: int) -> int:
        """``source.row`` of the change numbered ``sequence``: the rows of one rows event
        have consecutive sequence numbers."""
        last = self._last_sequence
        self._last_row = self._last_row + 1 if last is not None and sequence == last + 1 \
            else 0
        self._last_sequence = sequence
        return self._last_row


#: The fields of ``source`` that change between the events of a transaction, in the
#: block's order, as :func:`~meepo_kafka.debezium_compiled.source_template` formats them.
_VARYING = (("pos", b"%d"), ("row", b"%d"))
