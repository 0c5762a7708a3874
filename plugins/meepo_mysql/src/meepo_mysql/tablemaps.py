"""Parse each distinct table-map event once.

The server writes a table-map event before every statement's rows events, and
python-mysql-replication parses each one from scratch: column types and metadata, charsets,
names, keys. With small transactions that parse is a large share of decoding, although the
same few tables come back again and again.

A table-map event's body (table id, names, column types and metadata, optional metadata)
determines its parse completely, so :func:`install` memoizes the parse keyed by the body's
bytes and the reader options that change the parse. A table that changed (ALTER TABLE, a
new table id after a restart or a FLUSH TABLES) has a different body and is parsed anew;
nothing depends on table ids staying meaningful.
"""

from __future__ import annotations

from typing import Any

from pymysqlreplication.event import BinLogEvent
from pymysqlreplication.row_event import TableMapEvent

#: Distinct table definitions remembered; past this the memo starts over (a parse is cheap
#: enough that an occasional cold start does not matter).
MAX_ENTRIES = 4096

_original_init = TableMapEvent.__init__
_memo: dict[tuple[Any, ...], dict[str, Any]] = {}


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _options_key(kwargs: dict[str, Any]) -> tuple[Any, ...]:
    return (
        _frozen(kwargs.get("only_tables")), _frozen(kwargs.get("ignored_tables")),
        _frozen(kwargs.get("only_schemas")), _frozen(kwargs.get("ignored_schemas")),
        bool(kwargs.get("optional_meta_data")), _frozen(kwargs.get("mysql_version")),
        _frozen(kwargs.get("post_header_lengths")),
    )


def _unread_body(from_packet: Any, event_size: int) -> bytes | None:
    """The event's body, or None when the packet is not in the expected plain state."""
    if from_packet._BinLogPacketWrapper__data_buffer:
        return None
    raw = from_packet.packet
    start = raw._position
    body = raw._data[start:start + event_size]
    return body if len(body) == event_size else None


def _memoized_init(
    self: TableMapEvent, from_packet: Any, event_size: int, table_map: dict[int, Any],
    ctl_connection: Any, **kwargs: Any,
) -> None:
    if kwargs.get("freeze_schema") or kwargs.get("use_column_name_cache"):
        # Both make the parse depend on state outside the body (the table map, a cache).
        _original_init(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        return
    BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
    body = _unread_body(from_packet, event_size)
    if body is None:
        _original_init(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        return
    key = (body, self.dbms, _options_key(kwargs))
    parsed = _memo.get(key)
    if parsed is None:
        common = set(vars(self)) - {"_processed"}
        _original_init(self, from_packet, event_size, table_map, ctl_connection, **kwargs)
        if self._processed and any(c.name is None for c in self.columns):
            return  # without binlog_row_metadata=FULL the library fills names in later
        if len(_memo) >= MAX_ENTRIES:
            _memo.clear()
        _memo[key] = {k: v for k, v in vars(self).items() if k not in common}
        return
    # The parsed objects (columns, table, metadata) are shared by every event of this
    # definition. The library only changes them to fill in missing column names, and
    # definitions without names are not memoized.
    vars(self).update(parsed)
    if self._processed:
        table_map[self.table_id] = self.table_obj


def install() -> None:
    """Memoize TableMapEvent parsing (idempotent)."""
    TableMapEvent.__init__ = _memoized_init
