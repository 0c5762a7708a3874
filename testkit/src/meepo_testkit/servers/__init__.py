"""Real servers for tests, each started from the machine's binaries on a private port with
its data in a caller-given directory: MariaDB, Redis, PostgreSQL, and the Elasticsearch- and
Kafka-API servers of ``noida-db``; one module per server (``mariadb``, ``redis``,
``postgres``, ``elasticsearch``, ``kafka``). No pytest import here:
:mod:`meepo_testkit.pytest_plugin` builds the fixtures. The client libraries (pymysql,
psycopg) are imported only when a launcher that needs them starts."""

from .base import Service, ServiceError, free_port
from .elasticsearch import (
    ES_URL_ENV,
    ElasticsearchServer,
    ExternalElasticsearch,
    external_elasticsearch,
)
from .kafka import KAFKA_BOOTSTRAP_ENV, ExternalKafka, KafkaServer, external_kafka
from .mariadb import MYSQL_DSN_ENV, ExternalMySQL, MariaDBServer, Rows, external_mysql
from .postgres import PostgresServer
from .redis import RedisServer

__all__ = [
    "ES_URL_ENV",
    "KAFKA_BOOTSTRAP_ENV",
    "MYSQL_DSN_ENV",
    "ElasticsearchServer",
    "ExternalElasticsearch",
    "ExternalKafka",
    "ExternalMySQL",
    "KafkaServer",
    "MariaDBServer",
    "PostgresServer",
    "RedisServer",
    "Rows",
    "Service",
    "ServiceError",
    "external_elasticsearch",
    "external_kafka",
    "external_mysql",
    "free_port",
]
