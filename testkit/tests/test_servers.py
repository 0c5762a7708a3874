"""Each service fixture gives a real, working server (no mocks)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from meepo_testkit.pytest_plugin import MySQLDatabase
from meepo_testkit.servers import (
    ElasticsearchServer,
    ExternalElasticsearch,
    ExternalKafka,
    ExternalMySQL,
    KafkaServer,
    MariaDBServer,
    PostgresServer,
    RedisServer,
    ServiceError,
    free_port,
)


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# -- MariaDB ------------------------------------------------------------------------------


def test_mariadb_binlog_settings(mariadb: MariaDBServer) -> None:
    assert mariadb.dsn == f"mysql://meepo:meepo@127.0.0.1:{mariadb.port}"
    variables = dict(
        mariadb.execute(
            "SHOW VARIABLES WHERE Variable_name IN "
            "('binlog_row_metadata', 'binlog_row_image', 'binlog_format', 'log_bin', 'server_id')"
        )
    )
    assert variables == {
        "binlog_row_metadata": "FULL",
        "binlog_row_image": "FULL",
        "binlog_format": "ROW",
        "log_bin": "ON",
        "server_id": "1",
    }
    grants = mariadb.execute("SHOW GRANTS FOR CURRENT_USER()")
    assert any("ALL PRIVILEGES ON *.*" in g[0] and "WITH GRANT OPTION" in g[0] for g in grants)


def test_mariadb_insert_shows_in_binlog(mysql_db: MySQLDatabase) -> None:
    mysql_db.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
    [(log_file, _pos, *_rest)] = mysql_db.execute("SHOW MASTER STATUS")
    mysql_db.execute("INSERT INTO t VALUES (%s, %s)", 1, "hello")
    events = mysql_db.execute(f"SHOW BINLOG EVENTS IN '{log_file}'")
    kinds = [row[2] for row in events]
    assert "Write_rows_v1" in kinds
    assert any(row[2] == "Table_map" and f"({mysql_db.name}.t)" in row[5] for row in events)
    with mysql_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT v FROM t WHERE id = 1")
        assert cur.fetchone() == ("hello",)


def test_mysql_db_is_fresh_and_dropped(mariadb: MariaDBServer, mysql_db: MySQLDatabase) -> None:
    assert mysql_db.execute("SHOW TABLES") == []
    assert (mysql_db.name,) in mariadb.execute("SHOW DATABASES")


def test_mariadb_root_socket_and_meepo_test_db(mariadb: MariaDBServer) -> None:
    with mariadb.root_connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == ("root@localhost",)
    assert mariadb.execute("SELECT DATABASE()") == [("meepo_test",)]


def test_mariadb_restart_keeps_port_data_and_binlog(mariadb: MariaDBServer) -> None:
    mariadb.execute("CREATE TABLE IF NOT EXISTS survives (id INT PRIMARY KEY)")
    mariadb.execute("REPLACE INTO survives VALUES (42)")
    logs_before = [row[0] for row in mariadb.execute("SHOW BINARY LOGS")]
    port, pid = mariadb.port, mariadb.pid

    mariadb.stop()
    assert not mariadb.running
    with pytest.raises(Exception):  # noqa: B017 - pymysql's OperationalError
        mariadb.connect(connect_timeout=1)
    mariadb.restart()

    assert mariadb.running and mariadb.port == port and mariadb.pid != pid
    assert mariadb.execute("SELECT id FROM survives") == [(42,)]
    logs_after = [row[0] for row in mariadb.execute("SHOW BINARY LOGS")]
    assert logs_after[: len(logs_before)] == logs_before and len(logs_after) > len(logs_before)
    mariadb.execute("DROP TABLE survives")


def test_mariadb_startup_failure_is_clear(mariadb: MariaDBServer, tmp_path: Path) -> None:
    clash = MariaDBServer(tmp_path, port=mariadb.port, startup_timeout=30)  # port is taken
    with pytest.raises(ServiceError) as info:
        clash.start()
    message = str(info.value)
    assert message.startswith(f"mariadb on 127.0.0.1:{mariadb.port} failed: port in use;")
    assert f"last lines of {tmp_path / 'mariadb.log'}" in message
    assert "Address already in use" in message
    assert not clash.running and mariadb.running


# -- Redis --------------------------------------------------------------------------------


def test_redis_set_get(redis_db: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_db)
    try:
        assert client.dbsize() == 0
        client.set("k", "v")
        assert client.get("k") == b"v"
    finally:
        client.close()


def test_redis_db_is_flushed(redis_db: str) -> None:
    import redis

    with redis.Redis.from_url(redis_db) as client:
        assert client.get("k") is None


def test_taken_auto_port_is_repicked(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meepo_testkit.servers import base

    ports = iter([redis_server.port, free_port()])
    monkeypatch.setattr(base, "free_port", lambda: next(ports))
    with RedisServer(tmp_path) as other:
        assert other.port != redis_server.port
        assert other.send("PING") == "PONG"
    assert "in use" in (tmp_path / "redis.log").read_text()


def test_redis_restart_keeps_port(redis_server: RedisServer) -> None:
    import redis

    port = redis_server.port
    redis_server.restart()
    assert redis_server.port == port and redis_server.url == f"redis://127.0.0.1:{port}/0"
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.ping() is True


# -- PostgreSQL ---------------------------------------------------------------------------


def test_postgres_select(postgres: PostgresServer) -> None:
    import psycopg

    assert postgres.url == f"postgresql://postgres@127.0.0.1:{postgres.port}/meepo_test"
    with psycopg.connect(postgres.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone() == ("meepo_test",)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)


# -- Elasticsearch ------------------------------------------------------------------------


def test_es_index_and_get(es_server: ElasticsearchServer | ExternalElasticsearch) -> None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_server.url)
    index = f"meepo-test-{time.monotonic_ns()}"
    try:
        client.index(index=index, id="1", document={"name": "meepo", "n": 1}, refresh=True)
        assert client.get(index=index, id="1")["_source"] == {"name": "meepo", "n": 1}
    finally:
        client.options(ignore_status=404).indices.delete(index=index)
        client.close()


def test_external_es_cannot_restart() -> None:
    with pytest.raises(ServiceError, match="cannot restart an external cluster"):
        ExternalElasticsearch("http://example.invalid:9200").restart()


# -- Kafka --------------------------------------------------------------------------------


def test_kafka_produce_and_consume(kafka_server: KafkaServer | ExternalKafka) -> None:
    kafka = pytest.importorskip("confluent_kafka")
    admin = pytest.importorskip("confluent_kafka.admin")

    topic = f"meepo-test-{time.monotonic_ns()}"
    client = admin.AdminClient({"bootstrap.servers": kafka_server.bootstrap})
    client.create_topics([admin.NewTopic(topic, num_partitions=2)])[topic].result(timeout=30)
    producer = kafka.Producer({"bootstrap.servers": kafka_server.bootstrap})
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(30) == 0
    consumer = kafka.Consumer({
        "bootstrap.servers": kafka_server.bootstrap, "group.id": topic,
        "auto.offset.reset": "earliest",
    })
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None and message.error() is None
        assert (message.key(), message.value()) == (b"k", b"hello")
    finally:
        consumer.close()


def test_external_kafka_cannot_restart() -> None:
    with pytest.raises(ServiceError, match="MEEPO_TEST_KAFKA_BOOTSTRAP"):
        ExternalKafka("broker.invalid:9092").restart()


# -- external MySQL -----------------------------------------------------------------------


def test_external_mysql_dsn_parsing() -> None:
    server = ExternalMySQL("mysql://u%40x:p%3Aw@db.example:3307/app")
    assert (server.host, server.port, server.user, server.password) == (
        "db.example",
        3307,
        "u@x",
        "p:w",
    )
    assert server.default_database == "app"
    assert ExternalMySQL("mysql://root@localhost").port == 3306
    with pytest.raises(ServiceError):
        ExternalMySQL("postgresql://x@y")


def test_external_mysql_fixture(external_mysql: ExternalMySQL) -> None:
    assert external_mysql.execute("SELECT 1", database=None) == [(1,)]
