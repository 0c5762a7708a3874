"""Helpers of the end-to-end suite: one MariaDB table streamed by the real ``meepo``
CLI (mysql binlog source) into the ``redis`` invalidation, ``elasticsearch`` and ``sql``
(PostgreSQL) sinks, and helpers that read every side back for comparison.

Fixtures are in ``conftest.py``; this module is imported by the test files.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import redis
from elasticsearch import Elasticsearch, helpers
from meepo_testkit.pytest_plugin import MySQLDatabase
from meepo_testkit.servers import MariaDBServer


def require_plugins() -> None:
    """Skip the calling test module unless every plugin the suite drives is installed."""
    for module in ("meepo_mysql", "meepo_redis", "meepo_es", "meepo_sqlalchemy"):
        pytest.importorskip(module, reason="the e2e suite needs every meepo plugin installed")


ITEMS_DDL = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT NOT NULL)"
PG_ITEMS_DDL = (
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INTEGER NOT NULL)"
)
KEY_TEMPLATE = "item:{id}"
Rows = dict[int, dict[str, Any]]


def binlog_end(server: Any) -> str:
    """``FILE:POS`` of the server's binlog end right now."""
    file, pos = server.execute("SHOW MASTER STATUS", database=None)[0][:2]
    return f"{file}:{pos}"


def new_database(server: MariaDBServer) -> MySQLDatabase:
    """A uniquely named empty database on ``server`` (a private one, not the fixture's)."""
    name = f"e_{uuid.uuid4().hex[:12]}"
    server.execute(f"CREATE DATABASE `{name}`", database=None)
    return MySQLDatabase(name, server)


# -- pipeline config -------------------------------------------------------------------


def sinks(
    database: str, redis_url: str, es_url: str, pg_url: str, prefix: str, **es_extra: Any
) -> list[dict[str, Any]]:
    """The three sinks, redis first (so a failing redis sink stops before the others)."""
    return [
        {"type": "redis", "url": redis_url, "keys": {f"{database}.items": [KEY_TEMPLATE]}},
        {"type": "elasticsearch", "hosts": [es_url], "index": prefix + "_{table}", **es_extra},
        {"type": "sql", "url": pg_url},
    ]


def source(server: Any, database: str, start: str) -> dict[str, Any]:
    return {
        "type": "mysql",
        "dsn": server.dsn,
        "tables": [f"{database}.items"],
        "start": start,
        "heartbeat": 1,
    }


# -- reading every side back -----------------------------------------------------------


def table_rows(db: Any) -> Rows:
    rows = db.execute("SELECT id, name, qty FROM items ORDER BY id")
    return {int(i): {"id": int(i), "name": n, "qty": int(q)} for i, n, q in rows}


def es_docs(es_url: str, index: str) -> Rows:
    """Every document of ``index`` (scrolled: an index may hold more than one page)."""
    client = Elasticsearch(es_url, request_timeout=30)
    try:
        if not client.indices.exists(index=index):
            return {}
        client.indices.refresh(index=index)
        hits = helpers.scan(client, index=index, query={"query": {"match_all": {}}})
        return {int(h["_id"]): h["_source"] for h in hits}
    finally:
        client.close()


def es_index_exists(es_url: str, index: str) -> bool:
    client = Elasticsearch(es_url, request_timeout=30)
    try:
        return bool(client.indices.exists(index=index))
    finally:
        client.close()


def pg_rows(pg_url: str) -> Rows:
    with psycopg.connect(pg_url.replace("+psycopg", "")) as conn:
        rows = conn.execute("SELECT id, name, qty FROM items ORDER BY id").fetchall()
    return {int(i): {"id": int(i), "name": n, "qty": int(q)} for i, n, q in rows}


def seed_keys(redis_url: str, ids: range | list[int]) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.mset({KEY_TEMPLATE.format(id=i): "cached" for i in ids})
    finally:
        client.close()


def present_keys(redis_url: str, ids: range | list[int] | set[int]) -> set[int]:
    """Which of ``item:{id}`` for ``ids`` still exist."""
    client = redis.Redis.from_url(redis_url)
    try:
        ordered = sorted(ids)
        found = client.mget([KEY_TEMPLATE.format(id=i) for i in ordered]) if ordered else []
        return {i for i, value in zip(ordered, found, strict=True) if value is not None}
    finally:
        client.close()


def read_checkpoint(path: Path) -> Any:
    """The saved position, or None when there is no checkpoint file (yet)."""
    try:
        return json.loads(path.read_text())["position"]
    except FileNotFoundError:
        return None


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.25
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# -- the workload ----------------------------------------------------------------------


class Workload(threading.Thread):
    """Random transactions of 1-4 statements (insert, update by pk, delete by pk) on
    ``items`` until stopped. ``touched`` holds the ids updated or deleted by a transaction
    whose COMMIT returned. With ``survive_restarts`` a lost connection is reopened (a
    transaction whose commit failed may or may not have applied: compare end states)."""

    def __init__(
        self,
        db: Any,
        seed: int,
        *,
        first_id: int = 1,
        pause: float = 0.01,
        survive_restarts: bool = False,
    ) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.rng = random.Random(seed)
        self.next_id = first_id
        self.pause = pause
        self.survive_restarts = survive_restarts
        self.live: list[int] = []
        self.touched: set[int] = set()
        self.commits = 0
        self.reconnects = 0
        self.error: BaseException | None = None
        self.stop_event = threading.Event()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)
        assert not self.is_alive(), "the workload did not stop"
        assert self.error is None, f"workload failed: {self.error!r}"

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    with self.db.connect(connect_timeout=2) as conn:
                        self._loop(conn)
                    return
                except pymysql.err.OperationalError:
                    if not self.survive_restarts:
                        raise
                    self.reconnects += 1
                    self.stop_event.wait(0.3)
        except BaseException as exc:
            self.error = exc

    def _loop(self, conn: Any) -> None:
        rng = self.rng
        while not self.stop_event.is_set():
            touched: set[int] = set()
            inserted: list[int] = []
            deleted: list[int] = []
            with conn.cursor() as cur:
                for _ in range(rng.randint(1, 4)):
                    roll = rng.random()
                    candidates = [i for i in self.live if i not in deleted]
                    if roll < 0.45 or len(candidates) < 3:
                        new = self.next_id
                        self.next_id += 1
                        cur.execute(
                            "INSERT INTO items VALUES (%s, %s, %s)",
                            (new, f"n{rng.randrange(10**6)}", rng.randrange(100)),
                        )
                        inserted.append(new)
                    elif roll < 0.8:
                        target = rng.choice(candidates)
                        cur.execute(
                            "UPDATE items SET name = %s, qty = qty + 1 WHERE id = %s",
                            (f"u{rng.randrange(10**6)}", target),
                        )
                        touched.add(target)
                    else:
                        target = rng.choice(candidates)
                        cur.execute("DELETE FROM items WHERE id = %s", (target,))
                        touched.add(target)
                        deleted.append(target)
            conn.commit()
            self.live = [i for i in self.live if i not in deleted] + [
                i for i in inserted if i not in deleted
            ]
            self.touched |= touched
            self.commits += 1
            if self.pause:
                self.stop_event.wait(self.pause)
