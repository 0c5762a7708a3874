"""The Kafka-API server of ``noida-db``, and the real cluster that
``$MEEPO_TEST_KAFKA_BOOTSTRAP`` names instead."""

from __future__ import annotations

import socket
import struct

from .external import ExternalService
from .noida_db import NoidaServer

KAFKA_BOOTSTRAP_ENV = "MEEPO_TEST_KAFKA_BOOTSTRAP"


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


class ExternalKafka(ExternalService):
    """A real Kafka cluster named by ``$MEEPO_TEST_KAFKA_BOOTSTRAP`` (``host:port,...``)."""

    env = KAFKA_BOOTSTRAP_ENV

    @property
    def bootstrap(self) -> str:
        return self.address


def external_kafka() -> ExternalKafka | None:
    """The cluster named by ``$MEEPO_TEST_KAFKA_BOOTSTRAP``, or None when unset."""
    return ExternalKafka.from_env()
