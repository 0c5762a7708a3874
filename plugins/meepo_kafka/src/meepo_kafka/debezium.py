"""Debezium's change-event envelope, written by the sink and read by the source.

Events that carry their table's definition (``event.definition``: the postgres and mysql
sources') are written exactly as Debezium's PostgreSQL or MySQL connector writes them,
with or without the JSON converter's schema, by the per-table codecs of
:mod:`meepo_kafka.debezium_codec` (and :mod:`meepo_kafka.debezium_mysql_codec`).

Events without a definition get the schemaless envelope below (what the MySQL connector
emits with ``value.converter.schemas.enable=false``, by the values' Python types)::

    {"before": {...} | null, "after": {...} | null,
     "source": {"version", "connector", "name", "ts_ms", "snapshot", "db", "table",
                "server_id", "gtid", "file", "pos", "row", "thread", "query"},
     "op": "c" | "u" | "d" | "r", "ts_ms": ..., "transaction": null}

The key is ``{"col": value, ...}``. Values follow Debezium's MySQL mapping with
``decimal.handling.mode=string``, ``time.precision.mode=adaptive_time_microseconds`` and
``binary.handling.mode=base64``, except where meepo cannot know a column's declared type
(see :func:`debezium_value` and the README's table).

Read: the same envelope with or without a ``{"schema": ..., "payload": ...}`` wrapper (the
JSON converter's default). With a schema, Debezium's logical types (dates, timestamps,
times, decimals, JSON, sets, bits, binary, arrays) become the Python values meepo sources
emit; without one, values stay as the JSON carries them. Transaction records and
heartbeats are recognised as :class:`NotARowChange`.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import struct
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from importlib import metadata
from typing import Any

import orjson

from meepo_core import UNCHANGED, JsonNumber, RowEvent, dumps_exact, loads_exact

from .debezium_codec import OPS
from .debezium_codecs import CodecCache
from .debezium_snapshot import PLACES, snapshot_marker
from .debezium_transactions import TransactionTracker
from .debezium_types import DEFAULT_MODES, Modes
from .formats import (
    POSITION_HEADER,
    SEQUENCE_HEADER,
    Header,
    Headers,
    NotARowChange,
    header_value,
    key_document,
    loads,
)

log = logging.getLogger("meepo.kafka")

#: Debezium's ``unavailable.value.placeholder``: a column the source did not send.
UNAVAILABLE = "__debezium_unavailable_value"
ACTIONS = {op: action for action, op in OPS.items()}
#: Debezium records that carry no row change and are only counted when read, not logged.
QUIET = {"transaction", "heartbeat"}
#: Operations that carry no row change: truncate, logical-decoding message.
NOT_ROW_CHANGES = {"t": "truncate", "m": "message"}
_EPOCH = datetime(1970, 1, 1)
_EPOCH_DAY = date(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_GTID = re.compile(r"^\d+-\d+-\d+$|^[0-9a-fA-F-]{36}:\d+$")


def _version() -> str:
    try:
        return f"meepo-kafka {metadata.version('meepo-kafka')}"
    except metadata.PackageNotFoundError:
        return "meepo-kafka"


# -- writing ----------------------------------------------------------------------------


def debezium_value(value: Any) -> Any:
    """One column value in Debezium's JSON representation.

    DECIMAL -> string; DATE -> days since 1970-01-01; DATETIME (naive) -> microseconds
    since the epoch; TIMESTAMP (aware) -> ISO-8601 UTC string with ``Z``; TIME (timedelta)
    and time of day -> microseconds; binary -> base64; SET -> comma-joined sorted members;
    JSON values (objects and arrays) -> JSON text; non-finite floats -> ``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``; :data:`~meepo_core.UNCHANGED` -> the placeholder.
    """
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        if value - value == 0.0:
            return value
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, date):
        return (value - _EPOCH_DAY).days
    if isinstance(value, timedelta):
        return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if isinstance(value, time_of_day):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 \
            + value.microsecond
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return ",".join(sorted(str(member) for member in value))
    if isinstance(value, dict | list | tuple):
        return dumps_exact(value, ",", ":")
    if kind is JsonNumber:  # a JSON column holding a bare number: as written
        return orjson.Fragment(value.text)
    if value is UNCHANGED:
        return UNAVAILABLE
    raise TypeError(f"no Debezium representation for {type(value).__name__} value {value!r}")


def _row(image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {column: debezium_value(value) for column, value in image.items()}


def _mysql_source(event: RowEvent) -> dict[str, Any]:
    """The binlog fields of ``source``, from a mysql source's position and sequence."""
    position = event.position if isinstance(event.position, dict) else {}
    file, pos = position.get("file", ""), position.get("pos", 0)
    row = 0
    if isinstance(file, str) and isinstance(pos, int) and event.sequence is not None:
        suffix = file.rpartition(".")[2]
        if suffix.isdigit():  # the mysql source's sequence: (file index << 32 | pos) + row
            offset = event.sequence - ((int(suffix) << 32) | pos)
            row = offset if 0 <= offset < 1 << 24 else 0
    gtid = event.txid if event.txid and _GTID.match(event.txid) else None
    return {"server_id": 0, "gtid": gtid, "file": file, "pos": pos, "row": row,
            "thread": None, "query": None}


def _number(text: str | None) -> int | str | None:
    return int(text) if text is not None and text.isdigit() else text


def _lsn(text: Any) -> Any:
    """PostgreSQL's ``"16/B374D848"`` as the number Debezium writes."""
    high, slash, low = str(text).partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16) if slash else text
    except ValueError:
        return text


def connector_of(event: RowEvent) -> str:
    """Debezium's connector name for the event's source: ``mysql`` for binlog positions,
    ``postgresql`` for LSNs, else ``meepo``."""
    position = event.position
    if isinstance(position, dict):
        if "file" in position and "pos" in position:
            return "mysql"
        if "lsn" in position:
            return "postgresql"
    return "meepo"


def envelope(event: RowEvent, server_name: str, version: str) -> dict[str, Any]:
    """The whole change event (value) for ``event``."""
    connector = connector_of(event)
    source: dict[str, Any] = {
        "version": version,
        "connector": connector,
        "name": server_name,
        "ts_ms": int(event.committed_at.timestamp() * 1000),
        "snapshot": snapshot_marker(event),
        "db": event.schema,
        "table": event.table,
    }
    if connector == "mysql":
        source.update(_mysql_source(event))
    elif connector == "postgresql":
        source.update({"schema": event.schema, "txId": _number(event.txid),
                       "lsn": _lsn(event.position["lsn"])})
    return {
        "before": _row(event.before),
        "after": _row(event.after),
        "source": source,
        "op": OPS[event.action],
        "ts_ms": int(time.time() * 1000),
        "transaction": None,
    }


# -- reading ----------------------------------------------------------------------------


def _decimal_bytes(raw: str, scale: int) -> Decimal:
    unscaled = int.from_bytes(base64.b64decode(raw), "big", signed=True)
    # built from its digits: scaleb() would round to the context's 28 digits
    digits = tuple(int(d) for d in str(abs(unscaled)))
    return Decimal((1 if unscaled < 0 else 0, digits, -scale))


def _from_epoch_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _zoned(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _enum_set(text: str) -> set[str]:
    return set(text.split(",")) if text else set()


def _zoned_time(text: str) -> time_of_day:
    """Debezium's ZonedTime (``"10:44:15.5Z"``, always UTC) -> an aware time."""
    return time_of_day.fromisoformat(text.replace("Z", "+00:00"))


def _bits(raw: str, schema: Mapping[str, Any]) -> str:
    """Debezium's Bits (little-endian bytes) -> the bit string meepo's postgres source
    gives, padded to the declared length (``bit varying`` has none: leading zeros go)."""
    number = int.from_bytes(base64.b64decode(raw), "little")
    length = int((schema.get("parameters") or {}).get("length", 0))
    return format(number, f"0{length}b" if 0 < length < 2**31 - 1 else "b")


def _time_of_day(micros: int) -> time_of_day | str:
    """A PostgreSQL time from microseconds since midnight (``24:00:00`` stays text, as the
    postgres source gives it)."""
    if micros >= 86_400_000_000:
        return "24:00:00"
    seconds, fraction = divmod(micros, 1_000_000)
    return time_of_day(seconds // 3600, seconds // 60 % 60, seconds % 60, fraction)


#: PostgreSQL's time types come back as times of day (the mysql source's TIME is a
#: duration: timedelta, the default below).
_POSTGRES_TIMES: dict[str, Callable[[Any], Any]] = {
    "io.debezium.time.Time": lambda v: _time_of_day(v * 1000),
    "org.apache.kafka.connect.data.Time": lambda v: _time_of_day(v * 1000),
    "io.debezium.time.MicroTime": _time_of_day,
    "io.debezium.time.NanoTime": lambda v: _time_of_day(v // 1000),
}
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_UNAVAILABLE_BYTES = base64.b64encode(UNAVAILABLE.encode()).decode("ascii")


def _mysql_geometry(value: Mapping[str, Any]) -> bytes:
    """Debezium's Geometry/Point struct -> MySQL's stored geometry (what the mysql source
    gives): the SRID as 4 little-endian bytes, then the WKB."""
    srid = int(value.get("srid") or 0)
    return srid.to_bytes(4, "little") + base64.b64decode(value["wkb"])


#: MySQL's BIT(n) and geometries come back as the mysql source gives them.
_MYSQL_LOGICAL: dict[str, Callable[[Any], Any]] = {
    "io.debezium.data.Bits": lambda v: int.from_bytes(base64.b64decode(v), "little"),
    "io.debezium.data.geometry.Geometry": _mysql_geometry,
    "io.debezium.data.geometry.Point": _mysql_geometry,
}


_LOGICAL: dict[str, Callable[[Any, Mapping[str, Any]], Any]] = {
    "io.debezium.time.Date": lambda v, _: _EPOCH_DAY + timedelta(days=v),
    "org.apache.kafka.connect.data.Date": lambda v, _: _EPOCH_DAY + timedelta(days=v),
    "io.debezium.time.Timestamp": lambda v, _: _from_epoch_micros(v * 1000),
    "org.apache.kafka.connect.data.Timestamp": lambda v, _: _from_epoch_micros(v * 1000),
    "io.debezium.time.MicroTimestamp": lambda v, _: _from_epoch_micros(v),
    "io.debezium.time.NanoTimestamp": lambda v, _: _from_epoch_micros(v // 1000),
    "io.debezium.time.ZonedTimestamp": lambda v, _: _zoned(v),
    "io.debezium.time.Time": lambda v, _: timedelta(milliseconds=v),
    "org.apache.kafka.connect.data.Time": lambda v, _: timedelta(milliseconds=v),
    "io.debezium.time.MicroTime": lambda v, _: timedelta(microseconds=v),
    "io.debezium.time.NanoTime": lambda v, _: timedelta(microseconds=v // 1000),
    "org.apache.kafka.connect.data.Decimal": lambda v, s: (
        _decimal_bytes(v, int((s.get("parameters") or {}).get("scale", 0)))
        if isinstance(v, str) and s.get("type") == "bytes" else Decimal(str(v))),
    "io.debezium.data.VariableScaleDecimal": lambda v, _: _decimal_bytes(
        v["value"], int(v["scale"])),
    "io.debezium.data.Json": lambda v, _: loads_exact(v),
    "io.debezium.data.EnumSet": lambda v, _: _enum_set(v),
    "io.debezium.data.Bits": _bits,
    "io.debezium.time.ZonedTime": lambda v, _: _zoned_time(v),
    "io.debezium.time.MicroDuration": lambda v, _: timedelta(microseconds=v),
}


def _decode_value(value: Any, schema: Mapping[str, Any] | None,
                  postgres: bool = False) -> Any:
    """One value by its Connect schema (None: as the JSON carries it); ``postgres``: the
    message is from a PostgreSQL connector (times are times of day)."""
    if value is None or schema is None:
        return UNCHANGED if value == UNAVAILABLE else value
    if value == UNAVAILABLE:
        return UNCHANGED
    kind = schema.get("type")
    if kind == "array" and isinstance(value, list):
        if value == [UNAVAILABLE]:  # an unchanged TOAST array of strings
            return UNCHANGED
        items = schema.get("items")
        return [_decode_value(item, items, postgres) for item in value]
    name = str(schema.get("name"))
    if postgres and name in _POSTGRES_TIMES:
        return _POSTGRES_TIMES[name](value)
    if not postgres and name in _MYSQL_LOGICAL:
        return _MYSQL_LOGICAL[name](value)
    logical = _LOGICAL.get(name)
    if logical is not None:
        if kind == "bytes" and value == _UNAVAILABLE_BYTES:
            return UNCHANGED
        return logical(value, schema)
    if kind == "bytes" and isinstance(value, str):
        return UNCHANGED if value == _UNAVAILABLE_BYTES else base64.b64decode(value)
    if kind in ("float", "double") and isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if kind == "float" and isinstance(value, float) and not postgres:
        # MySQL's FLOAT, written in its shortest text: back to the same float32 (the mysql
        # source gives it widened to a double, -3.3999999521443642e+38 for -3.4E38; the
        # postgres source gives real as its shortest text's double, kept as it is)
        return struct.unpack("f", struct.pack("f", value))[0]
    return value


def _fields(schema: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not isinstance(schema, Mapping):
        return {}
    return {str(field.get("field")): field for field in schema.get("fields") or ()
            if isinstance(field, Mapping)}


def _decode_row(image: Any, schema: Mapping[str, Any] | None,
                postgres: bool = False) -> dict[str, Any] | None:
    if image is None:
        return None
    if not isinstance(image, dict):
        raise ValueError(f"a row image must be an object, not {type(image).__name__}")
    fields = _fields(schema)
    return {column: _decode_value(value, fields.get(column), postgres)
            for column, value in image.items()}


def _unwrap(document: Any) -> tuple[Any, Mapping[str, Any] | None]:
    """(payload, schema) of a JSON-converter message with or without schemas."""
    if isinstance(document, dict) and set(document) == {"schema", "payload"}:
        return document["payload"], document["schema"]
    return document, None


_HEARTBEAT_KEY_SCHEMA = orjson.Fragment(orjson.dumps({
    "type": "struct", "fields": [{"type": "string", "optional": False, "field": "serverName"}],
    "optional": False, "name": "io.debezium.connector.common.ServerNameKey", "version": 1}))
_HEARTBEAT_SCHEMA = orjson.Fragment(orjson.dumps({
    "type": "struct", "fields": [{"type": "int64", "optional": False, "field": "ts_ms"}],
    "optional": False, "name": "io.debezium.connector.common.Heartbeat", "version": 1}))


class DebeziumFormat:
    """Debezium's envelope; ``server_name`` is ``source.name`` (Debezium's
    ``topic.prefix``), ``schemas`` the JSON converter's ``schemas.enable``.

    Events that carry their table's definition (the postgres and mysql sources') are
    written exactly as Debezium's connector for their database writes them
    (:mod:`meepo_kafka.debezium_codec`); others in the schemaless envelope of
    :func:`envelope`."""

    name = "debezium"

    def __init__(self, server_name: str, schemas: bool = True,
                 modes: Modes = DEFAULT_MODES, transactions: bool = False,
                 heartbeat_interval_ms: int = 0) -> None:
        self.server_name = server_name
        self.schemas = schemas
        self.version = _version()
        self.codecs = CodecCache(server_name, self.version, schemas, modes)
        self._codecs = self.codecs.by_id
        #: provide.transaction.metadata: BEGIN/END records and the transaction block
        self.transactions = TransactionTracker(schemas) if transactions else None
        self.transaction_topic = f"{server_name}.transaction"
        self.heartbeat_interval = heartbeat_interval_ms / 1000
        self.heartbeat_topic = f"__debezium-heartbeat.{server_name}"
        self._last_heartbeat = 0.0
        self.run_id = str(uuid.uuid4())  # Debezium's __debezium.context.runId
        self._context_headers: list[tuple[str, str | bytes | None]] | None = None
        self._schemaless_noted: set[str] = set()

    def key(self, event: RowEvent) -> bytes | None:
        definition = event.definition
        if definition is not None:
            found = self._codecs.get(id(definition))  # CodecCache.codec's hit, inline
            if found is not None and found[0] is definition:
                return found[1].key(event.pk)
            return self.codecs.codec(definition).key(event.pk)
        return orjson.dumps(key_document(event, debezium_value))

    def value(self, event: RowEvent) -> bytes:
        definition = event.definition
        if definition is not None:
            tracker = self.transactions
            block = tracker.block(event) if tracker is not None else None
            found = self._codecs.get(id(definition))  # CodecCache.codec's hit, inline
            if found is not None and found[0] is definition:
                return found[1].value(event, block)
            return self.codecs.codec(definition).value(event, block)
        if self.schemas and event.table not in self._schemaless_noted:
            self._schemaless_noted.add(event.table)
            log.warning("events of %s carry no column definitions (the postgres and mysql "
                        "sources' do): written in the schemaless Debezium envelope, without "
                        "the JSON converter's schema", event.qualified_table)
        return orjson.dumps(envelope(event, self.server_name, self.version))

    def heartbeat(self) -> tuple[bytes, bytes] | None:
        """Debezium's heartbeat record (key, value) for ``__debezium-heartbeat.{prefix}``
        when ``heartbeat.interval.ms`` has passed since the last one, else None."""
        if not self.heartbeat_interval:
            return None
        now = time.monotonic()
        if now - self._last_heartbeat < self.heartbeat_interval:
            return None
        self._last_heartbeat = now
        key: dict[str, Any] = {"serverName": self.server_name}
        value: dict[str, Any] = {"ts_ms": time.time_ns() // 1_000_000}
        if self.schemas:
            return (orjson.dumps({"schema": _HEARTBEAT_KEY_SCHEMA, "payload": key}),
                    orjson.dumps({"schema": _HEARTBEAT_SCHEMA, "payload": value}))
        return orjson.dumps(key), orjson.dumps(value)

    def headers(self, part: RowEvent, counterpart: RowEvent | None) -> Header | None:
        """Debezium's headers of ``part``: for the halves of a key change (``counterpart``
        is the other half) ``__debezium.newkey`` on the delete and its tombstone,
        ``__debezium.oldkey`` on the create; then the ``__debezium.context.*`` headers."""
        definition = part.definition
        if definition is None:
            return None
        context = self._context_headers
        if context is not None and counterpart is None:  # the common case: no lookup
            return list(context)
        codec = self.codecs.codec(definition)
        if context is None:  # the same for every message of this run
            string = codec.string_header
            context = self._context_headers = [
                ("__debezium.context.connectorLogicalName", string(self.server_name)),
                ("__debezium.context.taskId", string("0")),
                ("__debezium.context.connectorName", string(codec.connector)),
                ("__debezium.context.runId", string(self.run_id)),
            ]
        if counterpart is None:
            return list(context)
        name = "__debezium.newkey" if part.action == "delete" else "__debezium.oldkey"
        return [(name, codec.key(counterpart.pk)), *context]

    def decode(self, key: bytes | None, value: bytes, headers: Headers) -> RowEvent | None:
        payload, schema = _unwrap(loads(value))
        if isinstance(payload, dict) and "op" not in payload:
            if payload.get("status") in ("BEGIN", "END") and "id" in payload:
                raise NotARowChange("transaction")  # provide.transaction.metadata
            if set(payload) == {"ts_ms"}:
                raise NotARowChange("heartbeat")
            if "tableChanges" in payload and "databaseName" in payload:
                raise NotARowChange("schema change")  # the MySQL schema change topic's
        if not isinstance(payload, dict) or "op" not in payload:
            raise ValueError("not a Debezium change event (no op)")
        op = payload["op"]
        if op in NOT_ROW_CHANGES:
            raise NotARowChange(NOT_ROW_CHANGES[op])
        action = ACTIONS.get(op)
        if action is None:
            raise ValueError(f"unknown Debezium op {op!r}")
        source = payload.get("source") or {}
        if not isinstance(source, dict) or "table" not in source:
            raise ValueError("not a Debezium change event (no source.table)")
        fields = _fields(schema)
        postgres = source.get("connector") == "postgresql"
        before = _decode_row(payload.get("before"), fields.get("before"), postgres)
        after = _decode_row(payload.get("after"), fields.get("after"), postgres)
        pk_columns, pk = _primary_key(key, postgres)
        micros = source.get("ts_us")
        stamp = source.get("ts_ms") or payload.get("ts_ms")
        sequence = header_value(headers, SEQUENCE_HEADER)
        position = header_value(headers, POSITION_HEADER)
        txid = source.get("gtid") or source.get("txId")
        return RowEvent(
            schema=str(source.get("schema") or source.get("db") or ""),
            table=str(source["table"]),
            action=action,  # type: ignore[arg-type]
            pk=pk,
            before=before,
            after=after,
            position=loads(position) if position else None,
            committed_at=(_EPOCH_UTC + timedelta(microseconds=micros)
                          if isinstance(micros, int) and not isinstance(micros, bool)
                          else datetime.fromtimestamp(stamp / 1000, UTC) if stamp
                          else datetime.now(UTC)),
            txid=str(txid) if txid is not None else None,
            sequence=int(sequence) if sequence else None,
            pk_columns=pk_columns,
            snapshot=PLACES.get(str(source.get("snapshot"))) if action == "read" else None,
        )


def _primary_key(key: bytes | None,
                 postgres: bool = False) -> tuple[tuple[str, ...] | None, Any]:
    """(pk_columns, pk) from a Debezium key; (None, None) for a keyless table."""
    if not key:
        return None, None
    payload, schema = _unwrap(loads(key))
    if not isinstance(payload, dict) or not payload:
        raise ValueError("a Debezium key must be an object of key columns")
    fields = _fields(schema)
    values = tuple(_decode_value(v, fields.get(k), postgres) for k, v in payload.items())
    columns = tuple(payload)
    if columns == ("pk",):
        return None, values[0]
    return columns, values[0] if len(values) == 1 else values
