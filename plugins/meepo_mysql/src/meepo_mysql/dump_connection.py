"""The replication connection: log in as a replica, request the dump, read its packets.

:class:`DumpConnection` logs in with pymysql (TLS and authentication are pymysql's),
tells the server what this replica understands (checksums, heartbeat period, MariaDB
GTID events), sends ``COM_BINLOG_DUMP`` (file/pos, or MariaDB's GTID state) or
``COM_BINLOG_DUMP_GTID`` (MySQL GTID set) and from then on reads binlog packets from the
socket through its own buffer.

To notice a stop request, flush a due batch and detect a stalled stream while nothing
arrives, :meth:`DumpConnection.read_packet` raises :class:`Idle` as soon as it has
caught up with the server and then every ``tick`` seconds of silence, but only between
packets, so the caller may simply call it again.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from typing import Any

import pymysql

from . import compat

COM_BINLOG_DUMP = 0x12
COM_BINLOG_DUMP_GTID = 0x1E
BINLOG_DUMP_NON_BLOCK = 0x01
BINLOG_THROUGH_GTID = 0x04
MAX_PAYLOAD = 0xFFFFFF
_RECV_SIZE = 256 * 1024
CR_SERVER_LOST = 2013


class Idle(Exception):
    """No byte arrived for one tick while waiting for the next packet."""


class DumpEnded(Exception):
    """The server ended the dump (``once`` mode: the end of the binlog was reached)."""


class DumpConnection:
    """One binlog dump from one server; see the module docstring."""

    tick = 0.2

    def __init__(self, settings: dict[str, Any], server_id: int, *, heartbeat: float,
                 blocking: bool, wake: socket.socket | None = None) -> None:
        self.settings = settings
        #: Also waited on while caught up: readable means "raise Idle now" (its bytes are
        #: drained), so the caller can act at once between two events.
        self.wake = wake
        self.server_id = server_id
        self.heartbeat = heartbeat
        self.blocking = blocking
        self.checksum = False
        self.last_data = time.monotonic()
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._pos = 0
        self._idle_said = False

    # -- setting up ---------------------------------------------------------------------
    def open(self, *, file: str = "", pos: int = 4, mariadb_gtid: str | None = None,
             mysql_gtid: str | None = None) -> None:
        """Log in and request the dump from ``file``/``pos`` or a GTID state."""
        conn = self._conn = pymysql.connect(**self.settings)
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL VARIABLES LIKE 'binlog_checksum'")
            row = cur.fetchone()
            self.checksum = row is not None and str(row[1]).upper() not in ("NONE", "")
            if self.checksum:
                cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
            # nanoseconds; MariaDB also times out the connection after slave_net_timeout
            cur.execute("SET @master_heartbeat_period = %s", (int(self.heartbeat * 1e9),))
            # 4: this replica understands MariaDB GTID events (MDEV-225); without it
            # MariaDB 10.6.12 fails while replacing them with dummies.
            cur.execute("SET @mariadb_slave_capability = 4")
            if mariadb_gtid is not None:
                cur.execute("SET @slave_connect_state = %s", (mariadb_gtid,))
                cur.execute("SET @slave_gtid_strict_mode = 1")
                cur.execute("SET @slave_gtid_ignore_duplicates = 0")
        flags = 0 if self.blocking else BINLOG_DUMP_NON_BLOCK
        if mysql_gtid is not None:
            command, payload = COM_BINLOG_DUMP_GTID, self._gtid_request(mysql_gtid, flags)
        else:
            name = b"" if mariadb_gtid is not None else file.encode()
            start = 4 if mariadb_gtid is not None else pos
            command = COM_BINLOG_DUMP
            payload = struct.pack("<IHI", start, flags, self.server_id) + name
        compat.send_command(conn, command, payload)
        self._sock = compat.stream_socket(conn)
        self.last_data = time.monotonic()

    def _gtid_request(self, gtid_set: str, flags: int) -> bytes:
        from pymysqlreplication.gtid import GtidSet

        encoded: bytes = GtidSet(gtid_set).encoded()
        # flags, server id, file name (3 zero bytes, as mysqlbinlog sends), position 4
        return (struct.pack("<HII", flags | BINLOG_THROUGH_GTID, self.server_id, 3)
                + b"\0\0\0" + struct.pack("<QI", 4, len(encoded)) + encoded)

    # -- reading -------------------------------------------------------------------------
    def read_packet(self) -> bytes:
        """The next binlog packet's payload (``00`` + event); raises :class:`Idle`,
        :class:`DumpEnded` or pymysql's error for an error packet or a lost connection."""
        header = self._take(4, boundary=True)
        length = header[0] | header[1] << 8 | header[2] << 16
        payload = self._take(length)
        while length == MAX_PAYLOAD:  # a packet of 16 MiB or more continues
            header = self._take(4)
            length = header[0] | header[1] << 8 | header[2] << 16
            payload += self._take(length)
        first = payload[0] if payload else 0xFE
        if first == 0x00:
            return payload
        if first == 0xFE and len(payload) < 9:
            raise DumpEnded()
        if first == 0xFF:
            pymysql.err.raise_mysql_exception(payload)
        raise pymysql.err.OperationalError(
            CR_SERVER_LOST, f"unexpected packet 0x{first:02x} in the dump")

    def _take(self, size: int, boundary: bool = False) -> bytes:
        start = self._pos
        if len(self._buffer) - start < size:
            self._fill(size, boundary)
            start = self._pos
        self._pos = start + size
        return self._buffer[start:start + size]

    def _fill(self, size: int, boundary: bool) -> None:
        parts = [self._buffer[self._pos:]]
        have = len(parts[0])
        while have < size:
            sock = self._sock
            if sock is None:
                raise pymysql.err.OperationalError(CR_SERVER_LOST, "connection closed")
            pending = sock.pending() if hasattr(sock, "pending") else 0  # TLS-buffered bytes
            if not pending:
                at_boundary = boundary and not have
                # Caught up: say so at once (the reader then delivers what it holds), and
                # afterwards every tick while the stream stays silent.
                wait = 0.0 if at_boundary and not self._idle_said else self.tick
                wake = self.wake
                try:
                    readable, _, _ = select.select(
                        [sock] if wake is None else [sock, wake], [], [], wait)
                except (OSError, ValueError) as exc:
                    raise self._lost(str(exc)) from exc
                if wake is not None and wake in readable:
                    with contextlib.suppress(OSError):
                        wake.recv(4096)
                if sock not in readable:
                    if at_boundary:
                        self._idle_said = True
                        self._buffer, self._pos = b"", 0
                        raise Idle()
                    continue
            try:
                chunk = sock.recv(max(_RECV_SIZE, size - have))
            except (TimeoutError, OSError) as exc:
                raise self._lost(str(exc)) from exc
            if not chunk:
                raise self._lost("closed by the server")
            parts.append(chunk)
            have += len(chunk)
            self.last_data = time.monotonic()
            self._idle_said = False
        self._buffer = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pos = 0

    def _lost(self, reason: str) -> pymysql.err.OperationalError:
        self.close()
        return pymysql.err.OperationalError(
            CR_SERVER_LOST, f"Lost connection to MySQL server ({reason})")

    def silent_for(self) -> float:
        """Seconds since the last bytes arrived."""
        return time.monotonic() - self.last_data

    # -- ending ---------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Unblock a waiting read now (also from another thread)."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        conn, self._conn, self._sock = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
