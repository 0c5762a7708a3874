"""Bulk retries under the pipeline's one policy: the sink sends each operation once per
``apply`` and the delivery engine (``Delivery``) backs off and retries the batch, which
resends only what was not applied. Covered with a real outage of the ES-API server
mid-batch, and 429/503 answers that noida-db never gives on its own (injected by
``ThrottlingProxyFake``, a named fake)."""

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

from meepo_core import (
    Batch,
    ConfigError,
    Delivery,
    Options,
    PipelineContext,
    PipelineSettings,
    RowEvent,
    SinkError,
)
from meepo_core.testing import make_context

Rewrite = Callable[[int, dict[str, Any]], tuple[int, dict[str, Any]] | None]


def events(count: int, start_seq: int = 1) -> Batch:
    return Batch(tuple(
        RowEvent("shop", "items", "write", i, None, {"id": i, "v": f"v{i}"}, None,
                 sequence=start_seq + i)
        for i in range(1, count + 1)
    ), 1)


LABEL = "sinks[0] elasticsearch"


def sink_for(
    url: str, prefix: str, tmp_path: Path, *, max_retries: int = 10, **extra: Any
) -> tuple[ElasticsearchSink, Delivery, PipelineContext]:
    """The sink, opened by a delivery engine whose pipeline retries ``max_retries`` times,
    0.1 s apart at first, at most 0.5 s."""
    options = {"type": "elasticsearch", "hosts": [url], "index": prefix + "_{table}",
               "request_timeout": 5, **extra}
    sink = ElasticsearchSink.from_options(Options(options, "sinks[0]", tmp_path))
    settings = PipelineSettings(max_retries=max_retries, retry_backoff=0.1,
                                retry_backoff_max=0.5)
    context = make_context(tmp_path, settings=settings)
    delivery = Delivery([(LABEL, sink)], context).open()
    return sink, delivery, context


def test_a_batch_survives_a_real_server_outage(
    es_server: Any, es: Any, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    if not isinstance(es_server, ElasticsearchServer):
        pytest.skip("cannot stop an external cluster ($MEEPO_TEST_ES_URL); the proxy test "
                    "below covers retries there")
    _, delivery, context = sink_for(es_server.url, prefix, tmp_path, max_retries=30)
    delivery.apply(events(1))  # creates the index while the server is up
    es_server.stop()
    errors: list[BaseException] = []

    def apply() -> None:
        try:
            delivery.apply(events(50, start_seq=100))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=apply)
    worker.start()
    time.sleep(1.5)
    assert worker.is_alive(), "apply returned while the server was down"
    es_server.start()
    worker.join(60)
    delivery.close()
    assert not worker.is_alive() and errors == []
    docs = read_index(f"{prefix}_items")
    assert sorted(map(int, docs)) == list(range(1, 51))
    assert context.metrics.failures[(LABEL, "bulk_retry")] >= 1
    assert context.metrics.failures[(LABEL, "retry")] >= 1  # the delivery engine's retries


class ThrottlingProxyFake:
    """An HTTP proxy to the real server that lets ``rewrite(request_no, bulk_response)``
    change bulk answers: return ``(status, body)`` to replace the answer, or None to pass
    it on. The request is always forwarded first, so the server really applied it."""

    def __init__(self, target: str, rewrite: Rewrite) -> None:
        self.target = target.rstrip("/")
        self.rewrite = rewrite
        self.bulk_requests = 0
        #: The ``_id`` of every operation of each bulk request, in order.
        self.bulk_ids: list[list[str]] = []
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
                    proxy.bulk_ids.append(_ids(body or b""))
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


def _ids(body: bytes) -> list[str]:
    """The ``_id`` of each action line of an NDJSON bulk body."""
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    return [meta["_id"] for line in lines for action, meta in line.items()
            if action in ("index", "delete", "create", "update")]


def _item_status(body: dict[str, Any], index: int, status: int, kind: str) -> None:
    """Make item ``index`` of a bulk answer report ``status`` with an error of ``kind``."""
    ((action, item),) = body["items"][index].items()
    body["items"][index] = {action: {**item, "status": status,
                                     "error": _rejected(status, kind)["error"]}}
    body["errors"] = True


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
                _item_status(body, index, status, "x")
            return 200, body
        if number == 3:
            return 503, _rejected(503, "unavailable_shards_exception")
        return None

    fake = proxy(rewrite)
    sink, delivery, context = sink_for(fake.url, prefix, tmp_path)
    delivery.apply(events(5))
    delivery.close()
    assert fake.bulk_requests == 4
    # Only the operations not applied are resent: all 5 after the whole-request 429, then
    # items 0 and 3 (ids 1 and 4), twice.
    assert fake.bulk_ids == [["1", "2", "3", "4", "5"]] * 2 + [["1", "4"]] * 2
    assert sorted(map(int, read_index(f"{prefix}_items"))) == [1, 2, 3, 4, 5]
    # The proxy forwards before it answers, so every retried operation had been applied:
    # 3 conflicts in request 2 (after the 429) and 2 in request 4, all counted as applied.
    assert sink.stale == 5 and sink.dead_letters == 0
    assert context.metrics.failures[(LABEL, "bulk_retry")] == 5 + 2 + 2
    assert context.metrics.failures[(LABEL, "retry")] == 3  # one policy: the engine's
    assert not (tmp_path / "dead.jsonl").exists()


def test_when_retries_run_out_the_batch_fails_retryably(
    proxy: Any, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    fake = proxy(lambda number, body: (503, _rejected(503, "unavailable_shards_exception")))
    sink, delivery, _ = sink_for(fake.url, prefix, tmp_path, max_retries=2)
    # The sink itself sends once and hands the batch back, retryably: it has no policy of
    # its own.
    with pytest.raises(SinkError, match=r"3 of 3 bulk operations not applied \(HTTP 503") as one:
        sink.apply(events(3))
    assert one.value.retryable is True and fake.bulk_requests == 1
    # The delivery engine retries max_retries times, then stops without a checkpoint.
    with pytest.raises(SinkError, match="still failing after 3 attempts") as info:
        delivery.apply(events(3))
    delivery.close()
    assert info.value.retryable is False
    assert fake.bulk_requests == 1 + 3
    assert not (tmp_path / "dead.jsonl").exists()


def test_a_resent_batch_dead_letters_each_refused_event_once(
    proxy: Any, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    """Item 1 is refused for good (a mapping error) while item 2 is throttled: the retry
    resends item 2 alone, and event 2 (of id 2) gets one dead letter, after the retry."""

    def rewrite(number: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if number == 1:
            _item_status(body, 1, 400, "document_parsing_exception")
            _item_status(body, 2, 429, "es_rejected_execution_exception")
            return 200, body
        return None

    fake = proxy(rewrite)
    sink, delivery, context = sink_for(fake.url, prefix, tmp_path)
    delivery.apply(events(4))
    delivery.close()
    assert fake.bulk_ids == [["1", "2", "3", "4"], ["3"]]
    [letter] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert letter["event"]["pk"] == 2 and "document_parsing_exception" in letter["error"]
    assert sink.dead_letters == 1 and context.metrics.dead_letters == 1
    assert context.metrics.failures[(LABEL, "retry")] == 1


@pytest.mark.parametrize("key", ["max_retries", "retry_backoff", "retry_backoff_max"])
def test_retry_keys_on_the_sink_point_to_the_pipeline(key: str, tmp_path: Path) -> None:
    options = {"type": "elasticsearch", "hosts": ["http://127.0.0.1:9200"], key: 1}
    with pytest.raises(ConfigError, match=rf"sinks\[0\]\.{key}: retries follow the pipeline"):
        ElasticsearchSink.from_options(Options(options, "sinks[0]", tmp_path))


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
    sink, delivery, _ = sink_for(fake.url, prefix, tmp_path, create_indices=False)
    with pytest.raises(SinkError, match=r"index_not_found_exception.*create_indices"):
        sink.apply(events(1))
    delivery.close()
    assert not (tmp_path / "dead.jsonl").exists()
