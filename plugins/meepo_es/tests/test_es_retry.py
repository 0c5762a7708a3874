"""Bulk retries: a real outage of the ES-API server mid-batch, and 429/503 answers that
noida-db never gives on its own (injected by ``ThrottlingProxyFake``, a named fake)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from meepo_es.elasticsearch_sink import ElasticsearchSink
from meepo_testkit.servers import ElasticsearchServer

from meepo_core.errors import SinkError
from meepo_core.events import Batch, RowEvent
from meepo_core.options import Options
from meepo_core.testing import make_context

Rewrite = Callable[[int, dict[str, Any]], tuple[int, dict[str, Any]] | None]


def events(count: int, start_seq: int = 1) -> Batch:
    return Batch(tuple(
        RowEvent("shop", "items", "write", i, None, {"id": i, "v": f"v{i}"}, None,
                 sequence=start_seq + i)
        for i in range(1, count + 1)
    ), 1)


def sink_for(url: str, prefix: str, tmp_path: Path, **extra: Any) -> tuple[ElasticsearchSink, Any]:
    options = {"type": "elasticsearch", "hosts": [url], "index": prefix + "_{table}",
               "retry_backoff": 0.1, "retry_backoff_max": 0.5, "request_timeout": 5, **extra}
    sink = ElasticsearchSink.from_options(Options(options, "sinks[0]", tmp_path))
    context = make_context(tmp_path)
    sink.open(context)
    return sink, context


def test_a_batch_survives_a_real_server_outage(
    es_server: Any, es: Any, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    if not isinstance(es_server, ElasticsearchServer):
        pytest.skip("cannot stop an external cluster ($MEEPO_TEST_ES_URL); the proxy test "
                    "below covers retries there")
    sink, context = sink_for(es_server.url, prefix, tmp_path, max_retries=30)
    sink.apply(events(1))  # creates the index while the server is up
    es_server.stop()
    errors: list[BaseException] = []

    def apply() -> None:
        try:
            sink.apply(events(50, start_seq=100))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=apply)
    worker.start()
    time.sleep(1.5)
    assert worker.is_alive(), "apply returned while the server was down"
    es_server.start()
    worker.join(60)
    sink.close()
    assert not worker.is_alive() and errors == []
    docs = read_index(f"{prefix}_items")
    assert sorted(map(int, docs)) == list(range(1, 51))
    assert context.metrics.failures[("sinks[0] elasticsearch", "bulk_retry")] >= 1


class ThrottlingProxyFake:
    """An HTTP proxy to the real server that lets ``rewrite(request_no, bulk_response)``
    change bulk answers: return ``(status, body)`` to replace the answer, or None to pass
    it on. The request is always forwarded first, so the server really applied it."""

    def __init__(self, target: str, rewrite: Rewrite) -> None:
        self.target = target.rstrip("/")
        self.rewrite = rewrite
        self.bulk_requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                request = urllib.request.Request(
                    proxy.target + self.path, data=body, method=self.command,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        status, payload = resp.status, resp.read()
                        content_type = resp.headers.get("Content-Type", "application/json")
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                    content_type = exc.headers.get("Content-Type", "application/json")
                if self.path.split("?")[0].endswith("/_bulk"):
                    proxy.bulk_requests += 1
                    changed = proxy.rewrite(proxy.bulk_requests, json.loads(payload))
                    if changed is not None:
                        status, payload = changed[0], json.dumps(changed[1]).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(es_server: Any, es: Any) -> Iterator[Callable[[Rewrite], ThrottlingProxyFake]]:
    made: list[ThrottlingProxyFake] = []

    def make(rewrite: Rewrite) -> ThrottlingProxyFake:
        made.append(ThrottlingProxyFake(es_server.url, rewrite))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


def _rejected(status: int, kind: str) -> dict[str, Any]:
    return {"error": {"type": kind, "reason": "injected by ThrottlingProxyFake"},
            "status": status}


def test_429_and_503_answers_are_retried_until_applied(
    proxy: Any, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    def rewrite(number: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if number == 1:  # the whole request is rejected
            return 429, _rejected(429, "es_rejected_execution_exception")
        if number == 2:  # applied, but items 0 and 3 report 429 / 503
            for index, status in ((0, 429), (3, 503)):
                ((action, item),) = body["items"][index].items()
                body["items"][index] = {action: {**item, "status": status,
                                                 "error": _rejected(status, "x")["error"]}}
            body["errors"] = True
            return 200, body
        if number == 3:
            return 503, _rejected(503, "unavailable_shards_exception")
        return None

    fake = proxy(rewrite)
    sink, context = sink_for(fake.url, prefix, tmp_path)
    sink.apply(events(5))
    sink.close()
    context.dead_letters.close()
    assert fake.bulk_requests == 4
    assert sorted(map(int, read_index(f"{prefix}_items"))) == [1, 2, 3, 4, 5]
    # The proxy forwards before it answers, so every retried operation had been applied:
    # 3 conflicts in request 2 (after the 429) and 2 in request 4, all counted as applied.
    assert sink.stale == 5 and sink.dead_letters == 0
    assert context.metrics.failures[("sinks[0] elasticsearch", "bulk_retry")] == 5 + 2 + 2
    assert not (tmp_path / "dead.jsonl").exists()


def test_when_retries_run_out_the_batch_fails_retryably(
    proxy: Any, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    fake = proxy(lambda number, body: (503, _rejected(503, "unavailable_shards_exception")))
    sink, _ = sink_for(fake.url, prefix, tmp_path, max_retries=2)
    with pytest.raises(SinkError, match="still failing after 3 attempts") as info:
        sink.apply(events(3))
    sink.close()
    assert info.value.retryable is True  # the runner backs off and retries the batch
    assert fake.bulk_requests == 3
    assert not (tmp_path / "dead.jsonl").exists()


def test_cluster_errors_raise_instead_of_dead_lettering(
    proxy: Any, prefix: str, tmp_path: Path
) -> None:
    """A missing index (auto-creation off) is the cluster's problem, not the document's."""

    def missing_index(number: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        items = [{"index": {"_index": f"{prefix}_items", "_id": "1", "status": 404,
                            "error": {"type": "index_not_found_exception",
                                      "reason": "no such index"}}}]
        return 200, {"errors": True, "items": items}

    fake = proxy(missing_index)
    sink, _ = sink_for(fake.url, prefix, tmp_path, create_indices=False)
    with pytest.raises(SinkError, match=r"index_not_found_exception.*create_indices"):
        sink.apply(events(1))
    sink.close()
    assert not (tmp_path / "dead.jsonl").exists()
