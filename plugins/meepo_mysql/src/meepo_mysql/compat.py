"""Every use of a third-party library's internals, in one place.

meepo-mysql patches nothing process-wide. What it needs beyond public APIs:

* pymysql has no public call to send a raw command packet or to read the socket once a
  binlog dump has turned the connection into an endless reply; :func:`send_command`
  and :func:`stream_socket` reach its internals.
* pymysql parses result rows field by field; :func:`query_rows` runs a query through
  ``Connection.query``'s own steps with a result class whose rows are parsed by code
  generated per result (:mod:`meepo_mysql.text_rows`), for snapshot chunks.
* MySQL's binary JSON has no public decoder; :func:`binary_json` uses
  python-mysql-replication's ``json_binary`` module.
* python-mysql-replication is kept as the *reference* decoder (``decoder = "library"``);
  its per-event classes take a packet wrapper, a table map and a control connection
  that are internal to its ``BinLogStreamReader``; :func:`library_packet` builds them.

Written for pymysql 1.1 (checked with 1.2.4) and mysql-replication 1.0 (checked with
1.0.17); the pyproject pins ``mysql-replication>=1.0,<1.1``.
"""

from __future__ import annotations

import socket
from typing import Any

import pymysql
from pymysql.connections import MySQLResult
from pymysql.constants import COMMAND
from pymysqlreplication.json_binary import parse_json as _parse_json

from .text_rows import row_parser


def binary_json(data: bytes) -> Any:
    """A JSON column's value as the binlog carries it (MySQL's binary JSON: a type byte,
    then the value), decoded by mysql-replication 1.0's ``json_binary.parse_json(type,
    data)``; strings may stay ``bytes`` (:func:`meepo_mysql.values.mysql_json` decodes
    them)."""
    return _parse_json(data[0], data[1:])


def send_command(conn: pymysql.connections.Connection[Any], command: int, payload: bytes) -> None:
    """Send ``command`` with ``payload`` (one packet, sequence ids reset) and read nothing.

    pymysql 1.1: ``Connection._execute_command`` frames a command packet; the public
    ``query`` would wait for a result set, which a binlog dump never finishes.
    """
    conn._execute_command(command, payload)


def stream_socket(conn: pymysql.connections.Connection[Any]) -> socket.socket:
    """The connection's socket (an ``ssl.SSLSocket`` with TLS).

    pymysql 1.1 keeps it in ``Connection._sock``; after the dump request the server sends
    only binlog packets, which meepo reads from the socket itself (see
    :mod:`meepo_mysql.dump_connection`). pymysql's buffered reader holds nothing at that
    point: the last reply before the dump request was read to its end.
    """
    sock = conn._sock
    if sock is None:
        raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server")
    return sock  # type: ignore[no-any-return]


def same_tls(conn: pymysql.connections.Connection[Any]) -> dict[str, Any]:
    """Connect arguments that give another connection to the same server the TLS outcome
    ``conn`` negotiated in pymysql's PREFERRED mode (no TLS options given), without
    building another SSL context: loading the system's CA certificates costs tens of
    milliseconds of CPU per connection. ``{}`` when TLS options were given explicitly.

    pymysql 1.2: ``Connection.ssl`` (TLS attempted), ``_ssl_required`` (options given),
    ``_secure`` (TLS in use) and ``ctx`` (the SSL context).
    """
    if not getattr(conn, "ssl", False) or getattr(conn, "_ssl_required", True):
        return {}
    if getattr(conn, "_secure", False):
        return {"ssl": conn.ctx}
    return {"ssl_disabled": True}


class _ControlStandIn:
    """What python-mysql-replication 1.0's event classes ask of their control connection
    (``_get_dbms`` and ``charset``) when optional metadata names every column."""

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor
        self.charset = "utf8mb4"

    def _get_dbms(self) -> str:
        return self.flavor


def library_event(
    packet: bytes, table_map: dict[int, Any], flavor: str, checksum: bool,
    post_header_lengths: bytes,
) -> Any:
    """python-mysql-replication's own event object for one dump packet.

    mysql-replication 1.0: ``BinLogPacketWrapper(packet, table_map, ctl_connection,
    mysql_version, use_checksum, allowed_events, only_tables, ignored_tables,
    only_schemas, ignored_schemas, freeze_schema, ignore_decode_errors, verify_checksum,
    optional_meta_data, enable_logging, use_column_name_cache, post_header_lengths)``
    parses the packet as its ``BinLogStreamReader.fetchone`` does, and registers table
    maps in ``table_map``. Returns the event (None if the library skips it).
    """
    from pymysqlreplication.packet import BinLogPacketWrapper
    from pymysqlreplication.row_event import (
        DeleteRowsEvent,
        TableMapEvent,
        UpdateRowsEvent,
        WriteRowsEvent,
    )

    wrapper = BinLogPacketWrapper(
        pymysql.protocol.MysqlPacket(packet, "utf8mb4"), table_map, _ControlStandIn(flavor),
        (0, 0, 0), checksum,
        frozenset({TableMapEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent}),
        None, None, None, None, False, False, False, True, False, False,
        list(post_header_lengths),
    )
    event = wrapper.event
    if isinstance(event, TableMapEvent):
        table_map[event.table_id] = event.get_table()
    return event


class _ParsedRows(MySQLResult):  # type: ignore[misc]  # pymysql ships no types for it
    """pymysql 1.1/1.2's buffered result, its row loop replaced: the converters it chose
    in ``_get_descriptions`` turn into one generated parser (same values)."""

    connection: Any
    converters: list[Any]

    def _read_rowdata_packet(self) -> None:
        parse = row_parser(self.converters)
        read_packet = self.connection._read_packet
        rows = []
        while True:
            packet = read_packet()
            if self._check_packet_is_eof(packet):
                self.connection = None  # as pymysql does: no reference cycle
                break
            try:
                rows.append(parse(packet._data))
            except IndexError:  # fewer fields than columns: pymysql's own loop copes
                packet._position = 0
                rows.append(self._read_row_from_packet(packet))
        self.affected_rows = len(rows)
        self.rows = tuple(rows)


#: Whether this pymysql has the internals :func:`query_rows` builds on.
_PARSED_ROWS = all(hasattr(MySQLResult, name) for name in (
    "_read_rowdata_packet", "_read_row_from_packet", "_check_packet_is_eof",
)) and hasattr(pymysql.connections.Connection, "_execute_command")


def query_rows(conn: pymysql.connections.Connection[Any], sql: str) -> tuple[Any, ...]:
    """The rows of ``sql`` (parameters already in it), as ``cursor.fetchall()`` gives them.

    pymysql 1.1/1.2: ``Connection.query`` is ``_execute_command(COM_QUERY, sql)`` then
    ``_read_query_result``, which builds a ``MySQLResult``; this builds a
    :class:`_ParsedRows` instead and keeps what ``_read_query_result`` keeps. A pymysql
    without those internals gets its own ``fetchall()``.
    """
    if not _PARSED_ROWS:
        with conn.cursor() as cur:
            cur.execute(sql)
            return tuple(cur.fetchall())
    conn._execute_command(COMMAND.COM_QUERY, sql.encode(conn.encoding))
    result = _ParsedRows(conn)
    result.read()
    conn._result = result
    if result.server_status is not None:
        conn.server_status = result.server_status
    return result.rows or ()
