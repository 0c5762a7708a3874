"""Lossless JSON encoding of events, for audit logs, replay, pub/sub and streams.

Values JSON cannot carry are tagged: ``{"$decimal": "1.10"}``, ``{"$bytes": "<base64>"}``,
``{"$datetime": "<iso>"}``, ``{"$date": ...}``, ``{"$time": ...}``, ``{"$timedelta": seconds}``,
``{"$set": [...]}``, ``{"$tuple": [...]}``, ``{"$unchanged": true}`` for
:data:`~meepo_core.events.UNCHANGED`. :func:`event_from_json` restores them exactly.

A tag is a one-key object whose key starts with ``$``. User data that has that shape (a JSON
column holding ``{"$date": "2020-01-01"}``) is escaped as ``{"$dict": {...}}``, so every value
round-trips exactly whatever its keys.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from .events import UNCHANGED, RowEvent

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$decimal": Decimal,
    "$bytes": base64.b64decode,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$timedelta": lambda seconds: timedelta(seconds=seconds),
    "$set": lambda items: set(items),
    "$tuple": lambda items: tuple(decode_value(item) for item in items),
    "$dict": lambda escaped: {key: decode_value(item) for key, item in escaped.items()},
    "$unchanged": lambda _: UNCHANGED,
}


def encode_value(value: Any) -> Any:
    """Turn ``value`` into plain JSON data, tagging the types JSON lacks."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$timedelta": value.total_seconds()}
    if isinstance(value, set | frozenset):
        return {"$set": sorted(encode_value(item) for item in value)}
    if isinstance(value, tuple):
        return {"$tuple": [encode_value(item) for item in value]}
    if isinstance(value, list):
        return [encode_value(item) for item in value]
    if isinstance(value, dict):
        encoded = {str(key): encode_value(item) for key, item in value.items()}
        if len(encoded) == 1 and next(iter(encoded)).startswith("$"):
            return {"$dict": encoded}  # user data shaped like a tag
        return encoded
    if value is UNCHANGED:
        return {"$unchanged": True}
    raise TypeError(f"cannot encode {type(value).__name__} value {value!r} as JSON")


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value`. A one-key ``$`` object with an unknown tag (written
    by a newer meepo, say) stays a plain object."""
    if isinstance(value, list):
        return [decode_value(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, payload),) = value.items()
            decoder = _DECODERS.get(tag)
            if decoder is not None:
                return decoder(payload)
        return {key: decode_value(item) for key, item in value.items()}
    return value


def event_to_dict(event: RowEvent) -> dict[str, Any]:
    """The whole event as JSON-ready data, with ``name`` included for readers;
    ``destination`` only when a transform set one."""
    data = {
        "name": event.name,
        "schema": event.schema,
        "table": event.table,
        "action": event.action,
        "pk": encode_value(event.pk),
        "before": encode_value(event.before),
        "after": encode_value(event.after),
        "position": event.position,
        "committed_at": event.committed_at.isoformat(),
        "txid": event.txid,
        "sequence": event.sequence,
        "pk_columns": list(event.pk_columns) if event.pk_columns is not None else None,
    }
    if event.destination is not None:
        data["destination"] = event.destination
    return data


def event_from_dict(data: dict[str, Any]) -> RowEvent:
    """Rebuild the event written by :func:`event_to_dict`."""
    return RowEvent(
        schema=data["schema"],
        table=data["table"],
        action=data["action"],
        pk=decode_value(data["pk"]),
        before=decode_value(data.get("before")),
        after=decode_value(data.get("after")),
        position=data.get("position"),
        committed_at=datetime.fromisoformat(data["committed_at"]),
        txid=data.get("txid"),
        sequence=data.get("sequence"),
        pk_columns=tuple(data["pk_columns"]) if data.get("pk_columns") is not None else None,
        destination=data.get("destination"),
    )


def event_to_json(event: RowEvent) -> str:
    return json.dumps(event_to_dict(event), ensure_ascii=False, separators=(",", ":"))


def event_from_json(line: str) -> RowEvent:
    return event_from_dict(json.loads(line))
