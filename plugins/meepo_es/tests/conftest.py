"""Shared helpers for the meepo-es tests: a client on the session's ES-API server, unique
index names per test, and reading an index back as {id: document}."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch


@pytest.fixture
def es(es_server: Any) -> Iterator[Elasticsearch]:
    es_server.start()  # in case an earlier test stopped it
    client = Elasticsearch(es_server.url, request_timeout=30)
    yield client
    client.close()


@pytest.fixture
def prefix(es: Elasticsearch) -> Iterator[str]:
    """A unique lower-case index-name prefix; the test's indices are deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    try:
        for alias_index in es.indices.get(index=f"{name}*", allow_no_indices=True).body:
            es.options(ignore_status=404).indices.delete(index=alias_index)
    except Exception:  # the server may be down after a failed outage test
        pass


def _read_index(es: Elasticsearch, index: str) -> dict[str, dict[str, Any]]:
    """Every document of ``index`` (after a refresh), as {id: source}."""
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=10_000, query={"match_all": {}}).body["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


def _has_delete_tombstones(es: Elasticsearch, index: str) -> bool:
    """Whether the server keeps the version of deleted documents (``index.gc_deletes``):
    real Elasticsearch does; noida-db 0.2 does not."""
    es.index(index=index, id="probe", document={}, version=10, version_type="external")
    es.delete(index=index, id="probe", version=20, version_type="external")
    try:
        es.index(index=index, id="probe", document={}, version=15, version_type="external")
    except Exception:
        return True
    es.delete(index=index, id="probe")
    return False


@pytest.fixture
def read_index(es: Elasticsearch) -> Any:
    """``read_index(name)`` -> {id: source} of every document, after a refresh."""
    return lambda index: _read_index(es, index)


@pytest.fixture
def require_tombstones(es: Elasticsearch, es_server: Any, prefix: str) -> None:
    """Skip unless the server keeps delete tombstones, as real Elasticsearch does."""
    if not _has_delete_tombstones(es, f"{prefix}_probe"):
        pytest.skip("noida-db keeps no delete tombstones (index.gc_deletes is not honoured: a "
                    "lower external version re-creates a deleted document); set "
                    "MEEPO_TEST_ES_URL to a real cluster to run this")
