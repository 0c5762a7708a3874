"""pytest fixtures that give tests real servers (registered as the ``meepo`` pytest11 plugin).

Session-scoped servers start lazily, only when a test asks for them, with data under the
session's ``tmp_path_factory`` dir, and are closed at session end.  Under pytest-xdist every
worker runs its own servers (own ports, own temp dirs).  Importing this module has no side
effects.

* ``mariadb`` -- :class:`~meepo_testkit.servers.MariaDBServer`
* ``redis_server`` -- :class:`~meepo_testkit.servers.RedisServer`
* ``postgres`` -- :class:`~meepo_testkit.servers.PostgresServer`
* ``es_server`` -- :class:`~meepo_testkit.servers.ElasticsearchServer`, or an
  :class:`~meepo_testkit.servers.ExternalElasticsearch` when ``$MEEPO_TEST_ES_URL`` is set
* ``kafka_server`` -- :class:`~meepo_testkit.servers.KafkaServer`, or an
  :class:`~meepo_testkit.servers.ExternalKafka` when ``$MEEPO_TEST_KAFKA_BOOTSTRAP`` is set
* ``external_mysql`` -- :class:`~meepo_testkit.servers.ExternalMySQL` from
  ``$MEEPO_TEST_MYSQL_DSN``; the test is skipped when it is unset
* ``mysql_db`` -- a fresh database on ``mariadb`` for one test, dropped afterwards
* ``redis_db`` -- the ``redis_server`` URL, after FLUSHALL
* ``postgres_db_url`` -- a fresh database on ``postgres`` for one test, as a SQLAlchemy URL
  (``postgresql+psycopg://...``), dropped afterwards
* ``follow`` -- ``follow(source, context, start)`` follows a source's stream in a thread
  (:class:`meepo_core.testing.StreamFollower`); every follower is stopped after the test
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from .servers import (
    MYSQL_DSN_ENV,
    ElasticsearchServer,
    ExternalElasticsearch,
    ExternalKafka,
    ExternalMySQL,
    KafkaServer,
    MariaDBServer,
    PostgresServer,
    RedisServer,
    Rows,
    external_elasticsearch,
    external_kafka,
)
from .servers import external_mysql as _external_mysql

if TYPE_CHECKING:
    import pymysql.connections

    from meepo_core import PipelineContext, Position, Source
    from meepo_core.testing import StreamFollower

__all__ = [
    "MySQLDatabase",
    "es_server",
    "external_mysql",
    "kafka_server",
    "mariadb",
    "mysql_db",
    "postgres",
    "redis_db",
    "redis_server",
]


@dataclass(frozen=True)
class MySQLDatabase:
    """One test's own database on the session MariaDB server."""

    name: str
    server: MariaDBServer

    def connect(self, **kwargs: Any) -> pymysql.connections.Connection[Any]:
        """A new pymysql connection to this database; ``kwargs`` go to ``pymysql.connect``."""
        return self.server.connect(self.name, **kwargs)

    def execute(self, sql: str, *params: Any) -> Rows:
        """Run one statement in this database with autocommit; return the fetched rows."""
        return self.server.execute(sql, *params, database=self.name)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A MariaDB server with a ROW/FULL/FULL binlog; user ``meepo``/``meepo``, db ``meepo_test``."""
    with MariaDBServer(tmp_path_factory.mktemp("mariadb")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A non-persistent Redis server; use ``.url``."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server (trust auth, ``wal_level=logical``) with database ``meepo_test``."""
    with PostgresServer(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def es_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ElasticsearchServer | ExternalElasticsearch]:
    """An Elasticsearch REST endpoint (``.url``): ``$MEEPO_TEST_ES_URL`` if set, else noida-db."""
    external = external_elasticsearch()
    if external is not None:
        yield external
        return
    with ElasticsearchServer(tmp_path_factory.mktemp("elasticsearch")) as server:
        yield server


@pytest.fixture(scope="session")
def kafka_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KafkaServer | ExternalKafka]:
    """A Kafka bootstrap address (``.bootstrap``): ``$MEEPO_TEST_KAFKA_BOOTSTRAP`` if set, else
    noida-db's Kafka-protocol server."""
    external = external_kafka()
    if external is not None:
        yield external
        return
    with KafkaServer(tmp_path_factory.mktemp("kafka")) as server:
        yield server


@pytest.fixture(scope="session")
def external_mysql() -> ExternalMySQL:
    """The MySQL server named by ``$MEEPO_TEST_MYSQL_DSN``; skips the test when it is unset."""
    server = _external_mysql()
    if server is None:
        pytest.skip(f"{MYSQL_DSN_ENV} is not set (mysql://user:pass@host:port)")
    return server


@pytest.fixture
def mysql_db(mariadb: MariaDBServer) -> Iterator[MySQLDatabase]:
    """A uniquely named empty database on ``mariadb`` for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    mariadb.start()  # in case an earlier test stopped it
    mariadb.execute(f"CREATE DATABASE `{name}`", database=None)
    try:
        yield MySQLDatabase(name, mariadb)
    finally:
        if mariadb.running:
            mariadb.execute(f"DROP DATABASE IF EXISTS `{name}`", database=None)


@pytest.fixture
def redis_db(redis_server: RedisServer) -> str:
    """The session Redis URL, emptied (FLUSHALL) before the test."""
    redis_server.start()  # in case an earlier test stopped it
    redis_server.flushall()
    url: str = redis_server.url
    return url


@pytest.fixture
def postgres_db_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database on the session PostgreSQL for one test, as a SQLAlchemy URL
    (drop ``+psycopg`` for libpq); dropped afterwards, connections or not."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.start()  # in case an earlier test stopped it
    with postgres.connect("postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{postgres.host}:{postgres.port}/{name}"
    finally:
        with postgres.connect("postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def follow() -> Iterator[Callable[[Source, PipelineContext, Position], StreamFollower]]:
    """``follow(source, context, start)`` starts a :class:`StreamFollower`; all the test
    started are stopped after it."""
    from meepo_core.testing import StreamFollower

    started: list[StreamFollower] = []

    def start(source: Source, context: PipelineContext, position: Position) -> StreamFollower:
        follower = StreamFollower(source, context, position)
        started.append(follower)
        return follower

    yield start
    for follower in started:
        follower.abandon()
