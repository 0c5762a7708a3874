"""The benchmark's private servers and a description of the machine they ran on.

``Servers`` starts MariaDB (ROW binlog), Redis, PostgreSQL and an Elasticsearch-API server
(noida-db) from :mod:`meepo_testkit.servers` under one temp dir, and offers the small
admin operations the benchmark needs between runs (reset a sink's state, count what a
sink holds). None of these operations is timed.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pymysql
from meepo_testkit.servers import (
    ElasticsearchServer,
    MariaDBServer,
    PostgresServer,
    RedisServer,
)

DATABASE = "meepo_bench"


@dataclass
class Servers:
    mariadb: MariaDBServer
    redis: RedisServer
    postgres: PostgresServer
    es: ElasticsearchServer
    workdir: Path

    # -- MariaDB ----------------------------------------------------------------------
    @property
    def mysql_dsn(self) -> str:
        return self.mariadb.dsn

    def mysql(self, **kwargs: Any) -> pymysql.connections.Connection[Any]:
        """An autocommit connection to the bench database."""
        return self.mariadb.connect(DATABASE, autocommit=True, **kwargs)

    def binlog_end(self) -> tuple[str, int]:
        with self.mariadb.connect(None, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            file, pos = cur.fetchone()[:2]
        return str(file), int(pos)

    def mysql_count(self, table: str) -> int:
        with self.mysql() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            return int(cur.fetchone()[0])

    # -- Redis ------------------------------------------------------------------------
    def redis_client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis.url)

    # -- PostgreSQL -------------------------------------------------------------------
    def pg_execute(self, sql: str) -> list[tuple[Any, ...]]:
        with self.postgres.connect(autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    # -- Elasticsearch ----------------------------------------------------------------
    def es_request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.es.url + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return json.loads(text) if text else None

    def es_delete_index(self, index: str) -> None:
        self.es_request("DELETE", f"/{index}")

    def es_count(self, index: str) -> int:
        self.es_request("POST", f"/{index}/_refresh")
        found = self.es_request("GET", f"/{index}/_count")
        return int(found["count"]) if found else 0


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """All four servers, started in parallel-friendly order, closed on exit."""
    with tempfile.TemporaryDirectory(prefix="meepo-bench-") as tmp:
        base = Path(tmp)
        with contextlib.ExitStack() as stack:
            mariadb = stack.enter_context(MariaDBServer(base / "mariadb"))
            redis = stack.enter_context(RedisServer(base / "redis"))
            postgres = stack.enter_context(PostgresServer(base / "postgres"))
            es = stack.enter_context(ElasticsearchServer(base / "es"))
            workdir = base / "work"
            workdir.mkdir()
            with mariadb.connect(None, autocommit=True) as conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            yield Servers(mariadb, redis, postgres, es, workdir)


def code_fingerprint() -> dict[str, str]:
    """A hash of the core's and each plugin's source files, to tell whether the code
    changed while the benchmark ran (each meepo subprocess imports it afresh)."""
    import hashlib

    root = Path(__file__).resolve().parent.parent
    found = {}
    for tree in [root / "src" / "meepo_core", *sorted((root / "plugins").glob("*/src"))]:
        digest = hashlib.sha256()
        for path in sorted(tree.rglob("*.py")):
            digest.update(str(path.relative_to(tree)).encode() + b"\0" + path.read_bytes())
        name = tree.name if tree.name != "src" else tree.parent.name
        found[name] = digest.hexdigest()[:12]
    return found


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(env: Servers | None = None) -> dict[str, Any]:
    """Date, ``uname -a``, CPUs, Python and the versions that matter, for the report."""
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=False)
    info: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "uname": uname.stdout.strip() or platform.platform(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "libraries": {
            name: _version(name)
            for name in (
                "meepo-core", "meepo-mysql", "meepo-redis", "meepo-es", "meepo-sqlalchemy",
                "mysql-replication", "pymysql", "redis", "elasticsearch", "sqlalchemy",
                "psycopg", "noida-db",
            )
        },
    }
    if env is not None:
        with env.mariadb.connect(None) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            info["servers"] = {"mariadb": cur.fetchone()[0]}
        info["servers"]["redis"] = env.redis.send("INFO", "server").split("redis_version:")[1]\
            .split()[0]
        info["servers"]["postgres"] = env.pg_execute("SHOW server_version")[0][0]
        root = env.es_request("GET", "/") or {}
        info["servers"]["elasticsearch-api"] = (
            f"noida-db (reports {root.get('version', {}).get('number', '?')})"
        )
    return info
