"""Message formats: how an event becomes a Kafka key and value, and back.

* ``meepo`` (the default): the value is meepo's lossless event JSON
  (:mod:`meepo_core.serialization`, every type tagged), the key the primary key with its
  column names in the same encoding. Read back, the event is equal to the one written.
* ``debezium``: Debezium's change-event envelope (:mod:`meepo_kafka.debezium`).

Both formats share the key shape ``{"col": value, ...}`` (``{"pk": value}`` when the
source does not name its key columns), so every change to a row lands on one partition.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

import orjson

from meepo_core import UNCHANGED, RowEvent, encode_value, event_from_dict, event_to_json

Headers = list[tuple[str, bytes | None]] | None
#: Headers as the sink produces them.
Header = list[tuple[str, str | bytes | None]]

#: Header names; values are UTF-8: the decimal sequence, the JSON source position.
SEQUENCE_HEADER = "meepo.sequence"
POSITION_HEADER = "meepo.position"



class NotARowChange(Exception):
    """A valid message that carries no row change (a schema change; Debezium's truncate,
    message, transaction and heartbeat records): :meth:`Format.decode` raises it."""

class Format(Protocol):
    """Encodes events for the sink and decodes messages for the source."""

    name: str

    def key(self, event: RowEvent) -> bytes | None:
        """The message key: the row's primary key with its column names, as JSON (None:
        the table has no key, as Debezium writes it)."""

    def value(self, event: RowEvent) -> bytes:
        """The message value. Raises ``TypeError``/``ValueError`` for a value it cannot
        encode (the sink dead-letters that event)."""

    def headers(self, part: RowEvent, counterpart: RowEvent | None) -> Header | None:
        """The format's own headers of ``part`` (put before meepo's), None for none;
        ``counterpart`` is the other half of an update that changed the key."""

    def decode(self, key: bytes | None, value: bytes, headers: Headers) -> RowEvent | None:
        """The event in a message, or None for a message that carries no row change (a
        Debezium truncate, say). Raises ``ValueError`` for a message in another format."""


def key_document(event: RowEvent, encode: Callable[[Any], Any]) -> dict[str, Any]:
    """``{"col": encoded value}`` for the event's key columns, in key order."""
    columns = event.pk_columns
    if not columns:
        return {"pk": encode(event.pk)}
    if len(columns) == 1:
        return {columns[0]: encode(event.pk)}
    return {column: encode(value) for column, value in zip(columns, event.pk, strict=True)}


def loads(raw: bytes) -> Any:
    """JSON from bytes: orjson, or the standard library for what orjson refuses (the
    ``NaN`` and ``Infinity`` tokens Python writes for non-finite floats)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def header_value(headers: Headers, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


class _NeedsStandardPath(Exception):
    """A value this module does not encode itself (a container, a subclass, a non-finite
    float that orjson would turn into null): the event takes the standard path."""


#: meepo's tags for the scalar types, exactly as :func:`encode_value` writes them (looked up
#: by exact type; subclasses take the standard path).
_TAGGERS: dict[type, Callable[[Any], Any]] = {
    Decimal: lambda v: {"$decimal": str(v)},
    datetime: lambda v: {"$datetime": v.isoformat()},
    date: lambda v: {"$date": v},  # orjson writes dates as isoformat() does
    time: lambda v: {"$time": v.isoformat()},
    timedelta: lambda v: {"$timedelta": v.total_seconds()},
    bytes: lambda v: {"$bytes": base64.b64encode(v).decode("ascii")},
    type(UNCHANGED): lambda _: {"$unchanged": True},
}


def _encode_row(row: Mapping[str, Any] | None) -> Any:
    """``row`` as :func:`encode_value` writes it: the same object when every value is a
    str, int, bool, None or finite float, else a copy with the scalar types tagged."""
    if row is None:
        return None
    encoded: dict[str, Any] | None = None
    for column, value in row.items():
        kind = type(value)
        if kind is str or kind is int or value is None or kind is bool:
            continue
        if kind is Decimal:  # the common tagged types first, without a call
            tagged: Any = {"$decimal": str(value)}
        elif kind is datetime:
            # orjson writes naive and UTC datetimes exactly as isoformat() does, faster
            zone = value.tzinfo
            tagged = {"$datetime": value if zone is None or zone is UTC else value.isoformat()}
        elif kind is float:
            if value - value == 0.0:  # NaN and infinities give NaN
                continue
            raise _NeedsStandardPath
        else:
            tag = _TAGGERS.get(kind)
            if tag is None:
                raise _NeedsStandardPath
            tagged = tag(value)
        if encoded is None:
            encoded = dict(row)
        encoded[column] = tagged
    if len(row) == 1 and next(iter(row)).startswith("$"):
        raise _NeedsStandardPath  # shaped like a tag: escaped by encode_value
    return encoded if encoded is not None else row


def _encode_scalar(value: Any) -> Any:
    kind = type(value)
    if kind is int or kind is str:
        return value
    return encode_value(value)


class MeepoFormat:
    """meepo's event JSON, byte for byte what :func:`meepo_core.serialization.event_to_json`
    writes except that floats may be spelled differently (``1e16`` for ``1e+16``): the same
    JSON document. Row images are tagged here in one pass and serialised by orjson; rows
    with non-finite floats, containers (JSON columns, sets) or subclasses, and anything
    orjson refuses (integers beyond 64 bits), take the standard path."""

    name = "meepo"

    def __init__(self) -> None:
        self._stamp: datetime | None = None
        self._stamp_text = ""
        self._key_prefixes: dict[str, bytes] = {}  # b'{"id":' per key column

    def key(self, event: RowEvent) -> bytes:
        columns, pk = event.pk_columns, event.pk
        if type(pk) is int and columns is not None and len(columns) == 1:
            prefix = self._key_prefixes.get(columns[0])
            if prefix is None:
                prefix = self._key_prefixes[columns[0]] = b"{" + orjson.dumps(columns[0]) + b":"
            return b"%s%d}" % (prefix, pk)
        document = key_document(event, _encode_scalar)
        try:
            return orjson.dumps(document)
        except (orjson.JSONEncodeError, TypeError):
            return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    def value(self, event: RowEvent) -> bytes:
        stamp = event.committed_at
        if stamp is not self._stamp:  # one datetime object per source transaction
            self._stamp, self._stamp_text = stamp, stamp.isoformat()
        columns = event.pk_columns
        try:
            before, after = _encode_row(event.before), _encode_row(event.after)
        except _NeedsStandardPath:
            return event_to_json(event).encode()
        document = {
            "name": f"{event.table}_{event.action}",
            "schema": event.schema,
            "table": event.table,
            "action": event.action,
            "pk": _encode_scalar(event.pk),
            "before": before,
            "after": after,
            "position": event.position,
            "committed_at": self._stamp_text,
            "txid": event.txid,
            "sequence": event.sequence,
            "pk_columns": list(columns) if columns is not None else None,
        }
        try:
            return orjson.dumps(document)
        except (orjson.JSONEncodeError, TypeError):
            return event_to_json(event).encode()

    def headers(self, part: RowEvent, counterpart: RowEvent | None) -> Header | None:
        return None

    def decode(self, key: bytes | None, value: bytes, headers: Headers) -> RowEvent | None:
        data = loads(value)
        if not isinstance(data, dict) or "action" not in data or "table" not in data:
            raise ValueError("not a meepo event (no action or table)")
        if data["action"] == "schema":
            raise NotARowChange("schema change")
        try:
            return event_from_dict(data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a meepo event ({type(exc).__name__}: {exc})") from exc


FORMATS = ("meepo", "debezium")
