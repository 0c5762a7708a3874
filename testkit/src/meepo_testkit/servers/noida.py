"""Elasticsearch- and Kafka-API servers from the ``noida-db`` package, and the real clusters
that ``$MEEPO_TEST_ES_URL`` and ``$MEEPO_TEST_KAFKA_BOOTSTRAP`` name instead."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import struct
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from .base import Service, ServiceError, find_binary

if TYPE_CHECKING:
    from collections.abc import Sequence

ES_URL_ENV = "MEEPO_TEST_ES_URL"
KAFKA_BOOTSTRAP_ENV = "MEEPO_TEST_KAFKA_BOOTSTRAP"


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def noida_executable() -> str:
    """The native ``noida-db`` binary inside the package if importable (so it is our direct
    child and gets reaped), else the ``noida-db`` script next to ``sys.executable`` or on PATH.
    """
    spec = importlib.util.find_spec("noida_db")
    for location in (spec.submodule_search_locations or []) if spec else []:
        native = Path(location) / "noida-db"
        if native.is_file() and os.access(native, os.X_OK):
            return str(native)
    try:
        return find_binary(["noida-db"], [Path(sys.executable).parent])
    except ServiceError as exc:
        raise ServiceError(f"{exc}; install it with `pip install noida-db`") from None


class NoidaServer(Service):
    """One ``noida-db`` service (``service``) in the foreground, on a private port.

    The whole process group is signalled on stop (the ``noida-db`` script is a Python wrapper
    that does not forward signals to its native child).  Data persists in ``base_dir/data``
    across ``restart()``.
    """

    service: ClassVar[str] = ""

    def __init__(
        self, base_dir: Path, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        super().__init__(base_dir, port, startup_timeout=startup_timeout)
        self.datadir = self.base_dir / "data"

    def command(self) -> Sequence[str]:
        return [
            noida_executable(), "start", "--only", self.service,
            f"--{self.service}-port", str(self.port), "--host", self.host,
            "--data-dir", str(self.datadir),
        ]

    def is_ready(self) -> bool:
        # noida-db writes its pid to the data dir's control file: proves *our* server answers.
        control = json.loads((self.datadir / "noida.control.json").read_text())
        if self.pid not in (control.get("pid"), _parent_pid(int(control.get("pid", 0)))):
            return False
        return self.answers()

    def answers(self) -> bool:
        """True when the service answers one real request of its protocol."""
        raise NotImplementedError


class ElasticsearchServer(NoidaServer):
    """An Elasticsearch-REST-compatible server; ``url`` is ``http://127.0.0.1:PORT``."""

    name = "elasticsearch"
    service = "elasticsearch"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def answers(self) -> bool:
        with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
            return int(resp.status) == 200


class KafkaServer(NoidaServer):
    """A Kafka-protocol server (one broker); ``bootstrap`` is ``127.0.0.1:PORT``."""

    name = "kafka"
    service = "kafka"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def answers(self) -> bool:
        # ApiVersions v0 (api key 18), the first request every Kafka client sends.
        client = b"meepo-testkit"
        header = struct.pack(">hhih", 18, 0, 1, len(client)) + client
        with socket.create_connection((self.host, self.port), timeout=2) as sock:
            sock.sendall(struct.pack(">i", len(header)) + header)
            reply = sock.recv(10)
        if len(reply) < 10:
            return False
        _size, correlation, error = struct.unpack(">iih", reply)
        return bool(correlation == 1 and error == 0)


class ExternalService:
    """A real server named by an environment variable; never started, stopped or restarted."""

    env: ClassVar[str] = ""

    def __init__(self, address: str) -> None:
        self.address = address

    @property
    def running(self) -> bool:
        """Always True: the cluster is assumed to be up."""
        return True

    def start(self) -> Self:
        """No-op."""
        return self

    def stop(self) -> None:
        """No-op."""

    def close(self) -> None:
        """No-op."""

    def restart(self) -> Self:
        """Always raises: an external cluster is not ours to restart."""
        raise ServiceError(f"cannot restart an external cluster ({self.env}={self.address})")

    @classmethod
    def from_env(cls) -> Self | None:
        """The cluster named by ``$env``, or None when it is unset."""
        address = os.environ.get(cls.env, "").strip()
        return cls(address) if address else None


class ExternalElasticsearch(ExternalService):
    """A real Elasticsearch cluster named by ``$MEEPO_TEST_ES_URL``."""

    env = ES_URL_ENV

    @property
    def url(self) -> str:
        return self.address.rstrip("/")


class ExternalKafka(ExternalService):
    """A real Kafka cluster named by ``$MEEPO_TEST_KAFKA_BOOTSTRAP`` (``host:port,...``)."""

    env = KAFKA_BOOTSTRAP_ENV

    @property
    def bootstrap(self) -> str:
        return self.address


def external_elasticsearch() -> ExternalElasticsearch | None:
    """The cluster named by ``$MEEPO_TEST_ES_URL``, or None when unset."""
    return ExternalElasticsearch.from_env()


def external_kafka() -> ExternalKafka | None:
    """The cluster named by ``$MEEPO_TEST_KAFKA_BOOTSTRAP``, or None when unset."""
    return ExternalKafka.from_env()
