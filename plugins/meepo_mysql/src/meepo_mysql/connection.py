"""The replication connection: pymysql, plus waits that give control back while idle.

A binlog dump is one endless server reply, read with blocking socket reads. To notice a
stop request, flush a due batch and detect a stalled stream while nothing arrives, the
connection raises :class:`Idle` as soon as it has caught up with the server and then
every ``tick`` seconds of silence, but only *between* packets (before the first byte of a
packet header), so the reader can simply call
``fetchone()`` again and the protocol state is untouched.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from typing import Any

import pymysql
import pymysql.connections
from pymysql.constants import CR

#: Command bytes of the requests that start a binlog dump.
_DUMP_COMMANDS = frozenset({0x12, 0x1E})  # COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID
_RECV_SIZE = 256 * 1024


class Idle(Exception):
    """No byte arrived for one tick while waiting for the next packet."""


class ReconnectRefused(Exception):
    """python-mysql-replication tried to reconnect on its own; meepo reconnects itself,
    from the last transaction boundary it delivered, so this ends the reader instead."""


class StreamConnection(pymysql.connections.Connection):  # type: ignore[misc]
    """A pymysql connection for the dump. Before the dump request it behaves exactly like
    pymysql; afterwards it reads through its own buffer with ``select`` so that waiting
    can be interrupted (see the module docstring). ``last_data`` is the monotonic time the
    last bytes arrived, for stall detection."""

    tick = 0.2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._armed = False
        self._boundary = False
        self._buffer = bytearray()
        self._idle_said = False
        self.last_data = time.monotonic()
        super().__init__(*args, **kwargs)

    def _write_bytes(self, data: bytes) -> None:
        if len(data) > 4 and data[4] in _DUMP_COMMANDS:
            self._armed = True
            self.last_data = time.monotonic()
        super()._write_bytes(data)

    def _read_packet(self, packet_type: Any = pymysql.connections.MysqlPacket) -> Any:
        self._boundary = True
        try:
            return super()._read_packet(packet_type)
        finally:
            self._boundary = False

    def _read_bytes(self, num_bytes: int) -> bytes:
        if not self._armed:
            return super()._read_bytes(num_bytes)  # type: ignore[no-any-return]
        buffer = self._buffer
        while len(buffer) < num_bytes:
            sock = self._sock
            if sock is None:
                raise pymysql.err.OperationalError(CR.CR_SERVER_LOST, "connection closed")
            pending = sock.pending() if hasattr(sock, "pending") else 0  # TLS-buffered bytes
            if not pending:
                at_boundary = self._boundary and not buffer
                # Caught up: say so at once (the reader then delivers what it holds), and
                # afterwards every tick while the stream stays silent.
                wait = 0.0 if at_boundary and not self._idle_said else self.tick
                try:
                    readable, _, _ = select.select([sock], [], [], wait)
                except (OSError, ValueError) as exc:
                    raise self._lost(str(exc)) from exc
                if not readable:
                    if at_boundary:
                        self._idle_said = True
                        raise Idle()
                    continue
            try:
                chunk = sock.recv(max(_RECV_SIZE, num_bytes - len(buffer)))
            except (TimeoutError, OSError) as exc:
                raise self._lost(str(exc)) from exc
            if not chunk:
                raise self._lost("closed by the server")
            buffer += chunk
            self.last_data = time.monotonic()
            self._idle_said = False
        self._boundary = False
        data = bytes(buffer[:num_bytes])
        del buffer[:num_bytes]
        return data

    def _lost(self, reason: str) -> pymysql.err.OperationalError:
        """Close the socket; the error to raise, as pymysql reports a lost connection."""
        self._force_close()
        return pymysql.err.OperationalError(
            CR.CR_SERVER_LOST, f"Lost connection to MySQL server ({reason})"
        )

    def silent_for(self) -> float:
        """Seconds since the last bytes arrived."""
        return time.monotonic() - self.last_data

    def shutdown(self) -> None:
        """Close the socket now (also from another thread) so a blocked read ends."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class ConnectionFactory:
    """``pymysql_wrapper`` for ``BinLogStreamReader``: the first stream connection is a
    :class:`StreamConnection`; a second one (the library's own reconnect, which would
    restart from a stale position) raises :class:`ReconnectRefused`. The library's
    control connection (``db=information_schema``) is a plain pymysql connection."""

    def __init__(self) -> None:
        self.stream: StreamConnection | None = None

    def __call__(self, **settings: Any) -> Any:
        if settings.get("db") == "information_schema":
            settings["database"] = settings.pop("db")  # pymysql deprecated "db"
            return pymysql.connect(**settings)
        if self.stream is not None:
            raise ReconnectRefused("the replication connection was lost")
        self.stream = StreamConnection(**settings)
        return self.stream
