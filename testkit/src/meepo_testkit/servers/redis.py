"""A private, non-persistent Redis server."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Service, ServiceError, find_binary

if TYPE_CHECKING:
    from collections.abc import Sequence


class RedisServer(Service):
    """A non-persistent Redis server (``--save "" --appendonly no``); ``url`` selects db 0."""

    name = "redis"

    def __init__(
        self, base_dir: Path, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        super().__init__(base_dir, port, startup_timeout=startup_timeout)
        self.datadir = self.base_dir / "data"
        self.server_binary = find_binary(["redis-server"])

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def initialize(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)

    def command(self) -> Sequence[str]:
        return [
            self.server_binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.datadir),
            "--logfile",
            "",
            "--daemonize",
            "no",
            "--databases",
            "64",
        ]

    def send(self, *args: str) -> str:
        """Send one command over a raw socket; return a simple, integer or bulk reply as text.

        Raises :class:`ServiceError` on an error reply.  (Enough RESP for setup; tests should
        use redis-py.)
        """
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            sock.sendall(payload.encode())
            with sock.makefile("rb") as reply:
                line = reply.readline().decode(errors="replace").rstrip("\r\n")
                if line.startswith("$") and int(line[1:]) >= 0:
                    return reply.read(int(line[1:]) + 2)[:-2].decode(errors="replace")
        if line.startswith("-"):
            raise ServiceError(f"redis {args[0]} failed: {line[1:]}")
        return line.lstrip("+:")

    def is_ready(self) -> bool:
        # INFO's process_id proves that *our* process answers, not another one on the port.
        info = self.send("INFO", "server")
        return f"process_id:{self.pid}\r\n" in info

    def flushall(self) -> None:
        """Empty every database."""
        self.send("FLUSHALL")
