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

A pinned start (``position``, for the benchmark ``bench/bench_debezium.py``): every binlog
status query (``SHOW BINARY LOG STATUS``, ``SHOW MASTER STATUS``) is answered with that
fixed file and position, as a ``SELECT`` of MariaDB's four status columns (``File``,
``Position``, ``Binlog_Do_DB``, ``Binlog_Ignore_DB``): Debezium's snapshot reads its start
from columns 1 and 2 of that answer (and a GTID set from a fifth column, absent here), so
with ``snapshot.mode = no_data`` it streams from the pinned position instead of the
binlog's current end. Only that answer changes; the binlog itself is read as it is.

Run on its own (``python mysql_version_proxy.py HOST:PORT [--position FILE:POS]``, see
:func:`main`), it serves in its own process, so its threads share no interpreter with
the client measured through it.

Nothing of Debezium or of the driver is changed or copied: both run as shipped.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import sys
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
#: Every binlog status query, under MySQL 8.4's name and the older one MariaDB knows.
STATUS_QUERY = re.compile(rb"SHOW\s+(BINARY\s+LOG|MASTER)\s+STATUS", re.IGNORECASE)
_BINLOG_FILE = re.compile(r"[A-Za-z0-9_.-]+")
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


def pinned_status(file: str, pos: int) -> bytes:
    """A query whose answer looks like MariaDB's ``SHOW MASTER STATUS`` at ``file:pos``."""
    if not _BINLOG_FILE.fullmatch(file) or pos < 4:
        raise ValueError(f"not a binlog position: {file}:{pos}")
    return (f"SELECT '{file}' AS File, {int(pos)} AS Position, '' AS Binlog_Do_DB, "
            "'' AS Binlog_Ignore_DB").encode()


class MySQLVersionProxy:
    """Listens on ``127.0.0.1:<listen_port>`` (0: any free port, then in :attr:`port`) and
    forwards each connection to ``(host, port)`` with the rewrites above;
    ``claim_version``: the second design's version (None: the server's own);
    ``position``: answer every binlog status query with this ``(file, pos)``."""

    def __init__(self, host: str, port: int, claim_version: bytes | None = None,
                 position: tuple[str, int] | None = None, listen_port: int = 0) -> None:
        self.upstream = (host, port)
        self.claim_version = claim_version
        self.pinned = None if position is None else pinned_status(*position)
        self.listener = socket.create_server(("127.0.0.1", listen_port))
        self.port: int = self.listener.getsockname()[1]
        self.rewritten: set[tuple[str, str]] = set()  # (query, as sent)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="mysql-proxy", daemon=True).start()

    def rewrite_query(self, payload: bytes) -> bytes:
        text = payload[1:]
        changed = text
        pinned = self.pinned
        if pinned is not None:  # (a function: the answer is not a template)
            changed = STATUS_QUERY.sub(lambda _: pinned, changed)
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


def main(argv: list[str] | None = None) -> int:
    """Serve until standard input closes (or the process is ended): prints ``port=N``, the
    port it listens on, as its first line once it accepts connections."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", help="the MariaDB server, HOST:PORT")
    parser.add_argument("--listen-port", type=int, default=0, help="default: any free port")
    parser.add_argument("--claim-version", help="the second design's version, e.g. 8.0.36-log")
    parser.add_argument("--position", help="answer binlog status queries with FILE:POS")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    position = None
    if args.position:
        file, _, pos = args.position.rpartition(":")
        position = (file, int(pos))
    proxy = MySQLVersionProxy(host, int(port), args.claim_version and args.claim_version.encode(),
                              position, args.listen_port)
    print(f"port={proxy.port}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes it (or goes)
    finally:
        proxy.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
