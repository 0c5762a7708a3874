"""Lossless JSON encoding of events, for audit logs, replay, pub/sub and streams.

Values JSON cannot carry are tagged: ``{"$decimal": "1.10"}``, ``{"$bytes": "<base64>"}``,
``{"$datetime": "<iso>"}``, ``{"$date": ...}``, ``{"$time": ...}``, ``{"$timedelta": seconds}``,
``{"$set": [...]}``, ``{"$tuple": [...]}``, ``{"$unchanged": true}`` for
:data:`~meepo_core.events.UNCHANGED`, ``{"$number": "1.10"}`` for a JSON document's number
kept as written (:class:`~meepo_core.json_numbers.JsonNumber`). :func:`event_from_json`
restores them exactly.

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

from .events import UNCHANGED, RowEvent, SnapshotPlace
from .json_numbers import JsonNumber

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
    "$number": JsonNumber,
}


def encode_value(value: Any) -> Any:
    """Turn ``value`` into plain JSON data, tagging the types JSON lacks. Values nested
    deeper than Python's stack allows (JSON documents of hundreds of levels) are encoded
    without recursion, to the same result."""
    try:
        return _encode(value)
    except RecursionError:
        return _encode_iteratively(value)


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value if type(value) is not JsonNumber else {"$number": value.text}
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
        return {"$set": sorted(_encode(item) for item in value)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        encoded = {str(key): _encode(item) for key, item in value.items()}
        if len(encoded) == 1 and next(iter(encoded)).startswith("$"):
            return {"$dict": encoded}  # user data shaped like a tag
        return encoded
    if value is UNCHANGED:
        return {"$unchanged": True}
    raise TypeError(f"cannot encode {type(value).__name__} value {value!r} as JSON")


def _encode_iteratively(value: Any) -> Any:
    """:func:`_encode` with a work list instead of recursion: each container is created
    empty, put in place, then filled by the items after it on the list."""
    root: list[Any] = [None]
    todo: list[tuple[Any, Any, Any]] = [(value, root, 0)]  # (value, into, at)
    while todo:
        item, into, at = todo.pop()
        if isinstance(item, list | tuple):
            items: list[Any] = [None] * len(item)
            into[at] = {"$tuple": items} if isinstance(item, tuple) else items
            todo.extend((child, items, index) for index, child in enumerate(item))
        elif isinstance(item, dict):
            keys = [str(key) for key in item]
            encoded: dict[str, Any] = dict.fromkeys(keys)
            tagged = len(encoded) == 1 and keys[0].startswith("$")
            into[at] = {"$dict": encoded} if tagged else encoded
            todo.extend(zip(item.values(), [encoded] * len(keys), keys, strict=True))
        else:
            into[at] = _encode(item)  # scalars, and sets (of hashable, so shallow, items)
    return root[0]


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value`. A one-key ``$`` object with an unknown tag (written
    by a newer meepo, say) stays a plain object. Deep values decode without recursion."""
    try:
        return _decode(value)
    except RecursionError:
        return _decode_iteratively(value)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, payload),) = value.items()
            decoder = _DECODERS.get(tag)
            if decoder is not None:
                return decoder(payload)
        return {key: _decode(item) for key, item in value.items()}
    return value


def _decode_iteratively(value: Any) -> Any:
    """:func:`_decode` with a work list; only plain lists and objects nest this deep
    (tagged values, such as a key's ``$tuple``, are decoded whole)."""
    root: list[Any] = [None]
    todo: list[tuple[Any, Any, Any]] = [(value, root, 0)]  # (value, into, at)
    while todo:
        item, into, at = todo.pop()
        if isinstance(item, list):
            items: list[Any] = [None] * len(item)
            into[at] = items
            todo.extend((child, items, index) for index, child in enumerate(item))
        elif isinstance(item, dict) and not (len(item) == 1 and next(iter(item)) in _DECODERS):
            decoded: dict[str, Any] = dict.fromkeys(item)
            into[at] = decoded
            todo.extend((child, decoded, key) for key, child in item.items())
        else:
            into[at] = _decode(item)
    return root[0]


def event_to_dict(event: RowEvent) -> dict[str, Any]:
    """The whole event as JSON-ready data, with ``name`` included for readers;
    ``destination`` only when a transform set one, ``snapshot`` (the
    :class:`~meepo_core.events.SnapshotPlace` flags, a number) only on a snapshot's reads."""
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
    if event.snapshot is not None:
        data["snapshot"] = int(event.snapshot)
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
        snapshot=SnapshotPlace(data["snapshot"]) if data.get("snapshot") is not None else None,
    )


def event_to_json(event: RowEvent) -> str:
    return json.dumps(event_to_dict(event), ensure_ascii=False, separators=(",", ":"))


def event_from_json(line: str) -> RowEvent:
    return event_from_dict(json.loads(line))
