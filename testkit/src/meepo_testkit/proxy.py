"""A real TCP proxy for timing and outage tests: put it between meepo and a server to make
a connection slow, late, paused, stalled or cut.

:class:`TcpProxy` forwards every connection to one upstream ``(host, port)``. What it can do,
each on the live connections:

- ``delay_connect``: seconds each *new* connection waits before anything is forwarded (a
  slow connection set-up, as a far or loaded server gives);
- ``rate``: bytes per second towards the client (a slow link);
- :meth:`pause` / :meth:`resume`: stop forwarding in both directions, sockets left open,
  then go on with nothing lost (a sink outage that ends);
- :meth:`stall`: stop forwarding on the connections open now, for good (a dead NAT entry or
  a hung server); connections opened later are forwarded normally;
- :meth:`cut`: shut the open connections down.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from types import TracebackType


class TcpProxy:
    """A proxy listening on ``127.0.0.1:<port>`` in front of ``(host, port)``."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        #: Bytes per second towards the client, when set.
        self.rate: float | None = None
        #: Seconds a new connection waits before its first byte is forwarded.
        self.delay_connect: float = 0.0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.connections: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self.closed = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.delay_connect:
            time.sleep(self.delay_connect)
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        frozen = threading.Event()
        self.connections.append((client, server, frozen))
        self._pump(client, server, frozen)

    def _pump(self, client: socket.socket, server: socket.socket, frozen: threading.Event) -> None:
        peers = {client: server, server: client}
        try:
            while not self.closed.is_set():
                if frozen.is_set() or not self._running.is_set():
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                if frozen.is_set():  # stalled while waiting: forward nothing that came after
                    continue
                for sock in readable:
                    self._running.wait()
                    data = sock.recv(16384)
                    if not data:
                        return
                    peers[sock].sendall(data)
                    if self.rate and sock is server:
                        time.sleep(len(data) / self.rate)
        except OSError:
            return
        finally:
            if not frozen.is_set():
                for sock in peers:
                    with contextlib.suppress(OSError):
                        sock.close()

    def pause(self) -> None:
        """Stop forwarding on every connection, open now or later, until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stall(self) -> None:
        """Stop forwarding on the connections open now, for good."""
        for _, _, frozen in self.connections:
            frozen.set()

    def cut(self) -> None:
        """Shut down the connections open now (both ends see the connection drop)."""
        for client, server, _ in self.connections:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed.set()
        self._running.set()
        self.listener.close()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
