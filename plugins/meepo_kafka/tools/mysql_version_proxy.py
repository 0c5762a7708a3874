"""A MySQL-protocol proxy that lets Debezium's MySQL connector, as shipped, capture from
MariaDB 10.11 by changing one statement of its queries; nothing else.

Why: Debezium 3.6.3's MySQL connector asks the server its version (``SELECT VERSION()``)
and takes MariaDB's "10.11" for a MySQL above 8.4, so it reads the binlog position with
``SHOW BINARY LOG STATUS`` (MySQL 8.4's name), which MariaDB does not know; MariaDB
answers the same question as ``SHOW MASTER STATUS``. Everything else passes unchanged:
the handshake keeps MariaDB's version (``5.5.5-10.11...-MariaDB``), so the bundled JDBC
driver (Connector/J 9.1) reads ``tx_isolation`` as it does for servers before MySQL 8, and
the binlog client knows it talks to MariaDB and asks for MariaDB's binlog events.

What it rewrites, in the client's command packets (``COM_QUERY``, sequence 0): the
statements of :data:`QUERY_REWRITES`. The server's handshake loses its SSL capability, so
the conversation stays readable (the connector runs with ``database.ssl.mode=disabled``
anyway). Every distinct query it changed is kept in :attr:`MySQLVersionProxy.rewritten`
(the recording tool prints them with ``--verbose``).

A second design, kept as an option (``claim_version``): tell the client the server is
MySQL 8.0.36 in the handshake. The connector still sends ``SHOW BINARY LOG STATUS`` (its
check asks ``VERSION()``, not the handshake), so the rename is needed either way; the
driver then asks for
``@@transaction_isolation`` and ``@@transaction_read_only`` (renamed below to MariaDB's
``tx_*``), and the binlog client, taking the server for MySQL, does not ask for MariaDB's
events: MariaDB replaces them with "# Dummy event" statements, which Debezium writes to
its schema change topic as DDL. The change events are the same; the default design has no
such records.

Nothing of Debezium or of the driver is changed or copied: both run as shipped.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading

#: The version the second design claims (a MySQL that Debezium's checks accept).
CLAIMED_VERSION = b"8.0.36-log"
#: (pattern, replacement) applied to the text of the client's queries: the first is all
#: the default design needs; the driver sends the others only to a claimed MySQL 8.
QUERY_REWRITES: list[tuple[re.Pattern[bytes], bytes]] = [
    (re.compile(rb"SHOW\s+BINARY\s+LOG\s+STATUS", re.IGNORECASE), b"SHOW MASTER STATUS"),
    (re.compile(rb"@@(session\.|global\.)?transaction_isolation", re.IGNORECASE),
     rb"@@\1tx_isolation"),
    (re.compile(rb"@@(session\.|global\.)?transaction_read_only", re.IGNORECASE),
     rb"@@\1tx_read_only"),
]
_COM_QUERY = 0x03
_CLIENT_SSL = 0x0800


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    header = _read_exactly(sock, 4)
    length = int.from_bytes(header[:3], "little")
    return header[3], _read_exactly(sock, length)


def _packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


def rewrite_handshake(payload: bytes, claim_version: bytes | None = None) -> bytes:
    """The server's handshake (protocol 10) without SSL, and with ``claim_version`` as the
    server's version when given."""
    if not payload or payload[0] != 0x0A:
        return payload  # an error packet (too many connections, ...): as it is
    end = payload.index(b"\0", 1)
    rest = bytearray(payload[end + 1:])
    # connection id (4), auth data part 1 (8), filler (1), then the capabilities' low bytes
    at = 4 + 8 + 1
    capabilities = int.from_bytes(rest[at:at + 2], "little") & ~_CLIENT_SSL
    rest[at:at + 2] = capabilities.to_bytes(2, "little")
    version = payload[1:end] if claim_version is None else claim_version
    return b"\x0a" + version + b"\0" + bytes(rest)


class MySQLVersionProxy:
    """Listens on ``127.0.0.1:<port>`` and forwards each connection to ``(host, port)``
    with the rewrites above; ``claim_version``: the second design's version (None: the
    server's own)."""

    def __init__(self, host: str, port: int, claim_version: bytes | None = None) -> None:
        self.upstream = (host, port)
        self.claim_version = claim_version
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.rewritten: set[tuple[str, str]] = set()  # (query, as sent)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="mysql-proxy", daemon=True).start()

    def rewrite_query(self, payload: bytes) -> bytes:
        text = payload[1:]
        changed = text
        for pattern, replacement in QUERY_REWRITES:
            changed = pattern.sub(replacement, changed)
        if changed == text:
            return payload
        with self._lock:
            self.rewritten.add((text.decode(errors="replace"), changed.decode(errors="replace")))
        return payload[:1] + changed

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            threading.Thread(target=self._from_server, args=(server, client), daemon=True,
                             name="mysql-proxy-down").start()
            threading.Thread(target=self._from_client, args=(client, server), daemon=True,
                             name="mysql-proxy-up").start()

    def _from_server(self, server: socket.socket, client: socket.socket) -> None:
        try:
            sequence, payload = _read_packet(server)
            client.sendall(_packet(sequence, rewrite_handshake(payload, self.claim_version)))
            while True:  # the rest (results, the binlog stream) as it comes
                data = server.recv(1 << 16)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, server)

    def _from_client(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while True:
                sequence, payload = _read_packet(client)
                if sequence == 0 and payload[:1] == bytes([_COM_QUERY]):
                    payload = self.rewrite_query(payload)
                server.sendall(_packet(sequence, payload))
        except OSError:
            pass
        finally:
            _close(client, server)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        for sock in self._sockets:
            _close(sock)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
