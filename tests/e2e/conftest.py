"""Fixtures of the end-to-end suite (helpers are in ``meepo_e2e_kit``).

The session fixtures (``mariadb``, ``redis_server``, ``postgres``, ``es_server``) are never
stopped here; tests that take a server down start a private one (``scratch_mariadb``, or
their own ``RedisServer``/``ElasticsearchServer``).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from elasticsearch import Elasticsearch
from meepo_testkit.servers import MariaDBServer

sys.path.insert(0, str(Path(__file__).parent))

from meepo_e2e_kit import PG_ITEMS_DDL


@pytest.fixture(scope="session")
def scratch_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """A private MariaDB for tests that restart it, change its globals or purge its binlogs,
    so the session ``mariadb`` other tests share is never disturbed."""
    with MariaDBServer(tmp_path_factory.mktemp("scratch-mariadb")) as server:
        yield server


@pytest.fixture
def pg_url(postgres_db_url: str) -> str:
    """A fresh PostgreSQL database holding an empty ``items`` replica table."""
    with psycopg.connect(postgres_db_url.replace("+psycopg", "")) as conn:
        conn.execute(PG_ITEMS_DDL)
    return postgres_db_url


@pytest.fixture
def es_prefix(es_server: Any) -> Iterator[str]:
    """A unique lower-case index prefix on the session ES server; indices deleted after."""
    es_server.start()
    name = f"e{uuid.uuid4().hex[:10]}"
    yield name
    client = Elasticsearch(es_server.url, request_timeout=30)
    try:
        for index in client.indices.get(index=f"{name}*", allow_no_indices=True).body:
            client.options(ignore_status=404).indices.delete(index=index)
    except Exception:  # best effort cleanup
        pass
    finally:
        client.close()
