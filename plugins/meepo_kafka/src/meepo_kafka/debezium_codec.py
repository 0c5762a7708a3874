"""One table's Debezium messages, compiled once per table definition.

A :class:`TableCodec` holds what does not change between the rows of one table
definition: the key and envelope schemas already serialised, and a function generated for
the definition that writes a row (:mod:`meepo_kafka.debezium_compiled`). A message is
written in parts: orjson writes the rows; the rest (schema, ``source``, ``transaction``,
``op``, times) is a ``bytes %`` template made once per transaction, filled with what
differs between its events (PostgreSQL: the LSN; MySQL: the binlog offset and row).
Events whose ``source`` the template cannot hold (snapshot reads, unusual positions) get
it from :meth:`TableCodec.source`. :class:`CodecCache` finds the codec of an event's
definition by identity (the source shares one definition object between the events of a
table), so the hot path does one dict lookup per event.

The messages are those of Debezium's PostgreSQL connector with Kafka Connect's
``JsonConverter`` (``schemas.enable`` on or off), see :mod:`meepo_kafka.debezium`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from meepo_core import ColumnDefinition, RowEvent, TableDefinition

from .debezium_compiled import compile_row, source_template
from .debezium_snapshot import snapshot_marker
from .debezium_types import DEFAULT_MODES, SOURCE_COMMON_FIELDS, FieldCodec, Modes, field_codec

OPS = {"write": "c", "update": "u", "delete": "d", "read": "r"}
_OPS = {action: op.encode() for action, op in OPS.items()}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: The integers orjson writes (it raises past them).
_INT64, _UINT64 = -(2**63), 2**64 - 1

#: ``source`` of Debezium's PostgreSQL connector (io.debezium.connector.postgresql.Source).
POSTGRES_SOURCE_SCHEMA: dict[str, Any] = {
    "type": "struct", "fields": [
        *SOURCE_COMMON_FIELDS,
        {"type": "string", "optional": False, "field": "schema"},
        {"type": "string", "optional": False, "field": "table"},
        {"type": "int64", "optional": True, "field": "txId"},
        {"type": "int64", "optional": True, "field": "lsn"},
        {"type": "int64", "optional": True, "field": "xmin"},
        {"type": "string", "optional": True, "field": "origin"},
        {"type": "int64", "optional": True, "field": "origin_lsn"},
    ],
    "optional": False, "name": "io.debezium.connector.postgresql.Source", "version": 1,
    "field": "source",
}

#: The ``transaction`` block (filled with ``provide.transaction.metadata``).
TRANSACTION_SCHEMA: dict[str, Any] = {
    "type": "struct", "fields": [
        {"type": "string", "optional": False, "field": "id"},
        {"type": "int64", "optional": False, "field": "total_order"},
        {"type": "int64", "optional": False, "field": "data_collection_order"},
    ],
    "optional": True, "name": "event.block", "version": 1, "field": "transaction",
}

#: The fields of PostgreSQL's ``source`` that change between the events of a transaction
#: (both hold the event's LSN), as :func:`source_template` formats them.
_POSTGRES_VARYING = (("sequence", b'"[null,\\"%d\\"]"'), ("lsn", b"%d"))

#: A header's JSON-converter schema for the string headers Debezium adds.
_STRING_HEADER_SCHEMA = b'{"type":"string","optional":false}'


def _with_field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {**schema, "field": name}


def lsn_number(position: Any) -> int | None:
    """PostgreSQL's ``"16/B374D848"`` (the postgres source's position) as a number."""
    if not isinstance(position, dict) or "lsn" not in position:
        return None
    return _lsn_text_number(str(position["lsn"]))


def _lsn_text_number(text: str) -> int | None:
    high, _, low = text.partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        return None


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


class TableCodec:
    """Keys, values and headers of one table definition's messages (Debezium's
    PostgreSQL connector's; subclasses for other connectors change the hooks below)."""

    #: Debezium's connector name (``source.connector`` and the connectorName header).
    connector = "postgresql"
    #: The ``source`` block's Connect schema.
    source_schema: dict[str, Any] = POSTGRES_SOURCE_SCHEMA
    #: Whether an update's old row is always whole (else per replica identity).
    old_rows_whole = False
    #: What the connector's JSON spelling changes in orjson's output (None: nothing).
    escape: Callable[[bytes], bytes] | None = None

    def field(self, column: ColumnDefinition, key: bool, modes: Modes) -> FieldCodec:
        """How ``column`` is declared and written (``key``: as a key field)."""
        return field_codec(column, key=key, modes=modes)

    def __init__(self, definition: TableDefinition, server_name: str, version: str,
                 schemas: bool, modes: Modes = DEFAULT_MODES) -> None:
        self.definition = definition
        self.server_name = server_name
        self.version = version
        self.schemas = schemas
        self.full_identity = definition.replica_identity == "full" or self.old_rows_whole
        self.fields = [self.field(column, False, modes) for column in definition.columns]
        self._row = compile_row(self.fields)
        #: the message after ``after`` for the last transaction's events, as a template
        #: of what differs between them (see :meth:`_varying`), keyed by what they share
        self._source_key: tuple[Any, ...] | None = None
        self._tail = b""
        by_name = {column.name: column for column in definition.columns}
        self.key_fields = [self.field(by_name[name], True, modes)
                           for name in definition.key_columns if name in by_name]
        single = self.key_fields[0] if len(self.key_fields) == 1 else None
        self._plain_key = single.name if single is not None and single.convert is None \
            else None
        base = f"{server_name}.{definition.schema}.{definition.table}"
        key_schema = {"type": "struct",
                      "fields": [_with_field(f.schema, f.name) for f in self.key_fields],
                      "optional": False, "name": f"{base}.Key"}
        row_schema = {"type": "struct",
                      "fields": [_with_field(f.schema, f.name) for f in self.fields],
                      "optional": True, "name": f"{base}.Value"}
        envelope_schema = {
            "type": "struct", "fields": [
                {**row_schema, "field": "before"}, {**row_schema, "field": "after"},
                self.source_schema, TRANSACTION_SCHEMA,
                {"type": "string", "optional": False, "field": "op"},
                {"type": "int64", "optional": True, "field": "ts_ms"},
                {"type": "int64", "optional": True, "field": "ts_us"},
                {"type": "int64", "optional": True, "field": "ts_ns"},
            ],
            "optional": False, "name": f"{base}.Envelope", "version": 2,
        }
        self.key_schema = orjson.Fragment(orjson.dumps(key_schema))
        self.value_schema = orjson.Fragment(orjson.dumps(envelope_schema))
        escape = self.escape or (lambda data: data)
        #: what comes before the payload in every message: the schema, serialised once
        self._key_head = escape(b'{"schema":' + orjson.dumps(key_schema) + b',"payload":')
        self._value_head = escape(
            b'{"schema":' + orjson.dumps(envelope_schema) + b',"payload":')
        #: the message up to ``before``'s value and after ``source``'s (a ``bytes %
        #: values`` template): the envelope's constant parts
        self._value_open = (self._value_head if schemas else b"") + b'{"before":'
        self._value_close = (b',"transaction":%s,"op":"%s","ts_ms":%d,"ts_us":%d,'
                             b'"ts_ns":%d}' + (b"}" if schemas else b""))
        #: the whole key of an integer ``pk`` of a one-column key written as it is, as a
        #: ``bytes % pk`` template (None: no such key)
        self._int_key: bytes | None = None
        if self._plain_key is not None:
            head = escape(b"{" + orjson.dumps(self._plain_key) + b":")
            if schemas:
                head = self._key_head + head
            self._int_key = head.replace(b"%", b"%%") + (b"%d}}" if schemas else b"%d}")

    # -- parts ----------------------------------------------------------------------------

    def row(self, image: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """An image in Debezium's encoding, every column of the definition in its order:
        columns the image lacks (a key-only old row) get Debezium's filler, unchanged
        TOAST values the type's placeholder (:func:`~meepo_kafka.debezium_compiled.
        compile_row`)."""
        return self._row(image)

    def key_payload(self, pk: Any) -> dict[str, Any] | None:
        fields = self.key_fields
        if not fields:
            return None
        if self._plain_key is not None:  # one column written as it is: the common key
            return {self._plain_key: pk}
        values = (pk,) if len(fields) == 1 else tuple(pk)
        return {f.name: (v if v is None or f.convert is None else f.convert(v))
                for f, v in zip(fields, values, strict=True)}

    def key(self, pk: Any) -> bytes | None:
        """The message key of the row keyed ``pk``; None for a table without a key."""
        if type(pk) is int and self._int_key is not None and _INT64 <= pk <= _UINT64:
            return self._int_key % pk  # the common key, formatted (orjson's range)
        payload = self.key_payload(pk)
        if payload is None:
            return None
        data = orjson.dumps(payload)
        if self.escape is not None:
            data = self.escape(data)
        if self.schemas:
            return b"".join((self._key_head, data, b"}"))
        return data

    def source(self, event: RowEvent) -> dict[str, Any]:
        """The ``source`` block of ``event``."""
        return self._source(event)

    def _varying(self, event: RowEvent) -> tuple[Any, ...] | None:
        """The values of ``event``'s ``source`` fields that differ between the events of
        its transaction, in :attr:`_tail`'s order (made for the event's transaction); None
        for an event whose block is written from :meth:`source` (reads, odd positions)."""
        position = event.position
        if event.action == "read" or type(position) is not dict:
            return None
        text = position.get("lsn")
        lsn = _lsn_text_number(text) if type(text) is str else None
        if lsn is None or lsn > _UINT64:  # (past orjson's range: it raises, as before)
            return None
        # The events of one transaction share its commit time and txid: only the LSN
        # differs, so the rest is written once per transaction.
        key = (event.committed_at, event.txid)
        if key != self._source_key:
            self._tail = self._tail_template(self._source(event), _POSTGRES_VARYING)
            self._source_key = key
        return (lsn, lsn)

    def _tail_template(self, block: dict[str, Any],
                       varying: tuple[tuple[str, bytes], ...]) -> bytes:
        """The message from ``source`` to its end, a ``bytes %`` template of the fields
        in ``varying`` (:func:`source_template`), then of ``transaction`` (JSON), ``op``
        and the three times."""
        source = source_template(block, varying)
        if self.escape is not None:
            source = self.escape(source)
        return b',"source":' + source + self._value_close

    def _source(self, event: RowEvent) -> dict[str, Any]:
        micros = ((event.committed_at - _EPOCH) // _MICROSECOND if event.action != "read"
                  else time.time_ns() // 1000)
        lsn = lsn_number(event.position)
        marker = snapshot_marker(event)
        # Debezium leaves txId, lsn and xmin out of an incremental snapshot's reads
        incremental = marker == "incremental"
        return {
            "version": self.version, "connector": "postgresql", "name": self.server_name,
            "ts_ms": micros // 1000,
            "snapshot": marker,
            "db": self.definition.database,
            "sequence": f'[null,"{lsn}"]' if lsn is not None else "[null,null]",
            "ts_us": micros, "ts_ns": micros * 1000,
            "schema": self.definition.schema, "table": self.definition.table,
            "txId": None if incremental else _int_or_none(event.txid),
            "lsn": None if incremental else lsn, "xmin": None, "origin": None,
            "origin_lsn": None,
        }

    def value(self, event: RowEvent, transaction: dict[str, Any] | None = None) -> bytes:
        """The change event; ``transaction`` is its ``transaction`` block (metadata).

        Written in parts: orjson writes each row; the envelope's constant parts, the
        ``source`` block and the rest are a template (per transaction) filled with
        ``bytes %``."""
        action = event.action
        row, dumps, escape = self._row, orjson.dumps, self.escape
        # Under REPLICA IDENTITY DEFAULT/INDEX the server sends no old row for an update
        # that keeps the key, and Debezium writes before = null.
        image = None if action == "update" and not self.full_identity else event.before
        before = b"null" if image is None else dumps(row(image))
        image = event.after
        after = b"null" if image is None else dumps(row(image))
        block = b"null" if transaction is None else dumps(transaction)
        if escape is not None:  # isascii first: most rows need no escape (C speed)
            if not before.isascii():
                before = escape(before)
            if not after.isascii():
                after = escape(after)
            if not block.isascii():
                block = escape(block)
        now = time.time_ns()
        varying = self._varying(event)
        if varying is None:
            source = dumps(self.source(event))
            tail = b',"source":' + (source if escape is None else escape(source)) \
                + self._value_close % (block, _OPS[action], now // 1_000_000, now // 1000,
                                       now)
        else:
            tail = self._tail % (*varying, block, _OPS[action], now // 1_000_000,
                                 now // 1000, now)
        return b"".join((self._value_open, before, b',"after":', after, tail))

    def string_header(self, text: str) -> bytes:
        """A string header value as the JSON converter writes it."""
        if self.schemas:
            return b'{"schema":' + _STRING_HEADER_SCHEMA + b',"payload":' \
                + orjson.dumps(text) + b"}"
        return orjson.dumps(text)
