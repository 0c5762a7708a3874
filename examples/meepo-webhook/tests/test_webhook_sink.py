"""The example plugin passes meepo's sink contract against a real local HTTP receiver, and
receives events from a real `meepo run`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from meepo_webhook.webhook_sink import WebhookSink

from meepo_core import Batch, SinkError
from meepo_core.testing import (
    SinkContract,
    contract_events,
    contract_row,
    make_context,
    run_meepo,
    write_config,
)

SAMPLE = Path(__file__).parents[2] / "sample-events.jsonl"
UNSENT = {"$unchanged": True}  # how meepo_core.serialization writes UNCHANGED


class Receiver:
    """An HTTP server keeping the latest row per (table, pk), like a real webhook consumer:
    snapshot rows (``read``) are upserts, a column sent as ``{"$unchanged": true}`` keeps
    its value, and a request holding a row named ``poison`` is refused with 422. Answers
    ``status`` instead when set."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []
        self.status: int | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                events = body["events"]
                if receiver.status is not None or any(
                        (e["after"] or {}).get("name") == "poison" for e in events):
                    self.send_error(receiver.status or 422, "refused")
                    return
                receiver.requests.append({"key": self.headers["Idempotency-Key"], **body})
                for event in events:
                    receiver.apply(event)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def apply(self, event: dict[str, Any]) -> None:
        key = f"{event['table']}:{json.dumps(event['pk'])}"
        if event["action"] == "delete":
            self.rows.pop(key, None)
            return
        stored = self.rows.get(key, {})
        self.rows[key] = {column: stored.get(column) if value == UNSENT else value
                          for column, value in event["after"].items()}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()


class TestWebhookContract(SinkContract):
    sink_type = "webhook"

    @pytest.fixture(autouse=True)
    def _receiver(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def sink_options(self) -> dict[str, Any]:
        return {"url": self.receiver.url}

    def observable_state(self) -> Any:
        return dict(self.receiver.rows)

    def poison_batch(self) -> Batch:
        """A row the receiver refuses (422)."""
        return Batch((self.contract_event("write", 9, contract_row(9, "poison")),), 6)

    def test_snapshot_rows_upsert_and_unchanged_values_keep_the_received_value(self) -> None:
        self.apply_all([self.read_and_unchanged_batch()])
        assert self.observable_state() == {"items:5": {
            "id": 5, "name": "cinq", "price": {"$decimal": "5.50"},
            "updated_at": {"$datetime": "2026-01-01T00:00:00+00:00"}}}

    def test_requests_of_other_events_never_share_an_idempotency_key(self) -> None:
        chunk = [self.contract_event("read", pk, contract_row(pk, "r"), sequence=50)
                 for pk in (1, 2, 3, 4)]  # a snapshot chunk: one sequence
        batches = [Batch(tuple(chunk[:2]), None), Batch(tuple(chunk[2:]), 6)]
        self.apply_all(batches)
        self.apply_all(batches)  # replayed
        keys = [request["key"] for request in self.receiver.requests]
        assert len(keys) == 4 and keys[:2] == keys[2:] and keys[0] != keys[1]

    def test_a_refused_batch_dead_letters_only_the_refused_events(self) -> None:
        context = make_context(self.tmp_path)
        with self.opened(context) as sink:
            sink.apply(Batch((
                self.contract_event("write", 7, contract_row(7, "seven"), sequence=101),
                self.contract_event("write", 8, contract_row(8, "poison"), sequence=102),
                self.contract_event("write", 9, contract_row(9, "nine"), sequence=103),
            ), 6))
        context.dead_letters.sync()
        assert sorted(self.observable_state()) == ["items:7", "items:9"]
        [letter] = self.dead_letters()
        assert letter["event"]["pk"] == 8 and "answered 422" in letter["error"]

    def test_a_rejected_login_stops_without_retrying(self) -> None:
        self.receiver.status = 401
        with self.opened() as sink, pytest.raises(SinkError, match="answered 401") as caught:
            sink.apply(self.batches()[0])
        assert caught.value.retryable is False
        assert self.dead_letters() == []


def test_meepo_run_delivers_the_sample_to_the_webhook(tmp_path: Path, receiver: Receiver) -> None:
    write_config(
        tmp_path,
        {
            "hook": {
                "source": {"type": "jsonl", "path": str(SAMPLE)},
                "sinks": [{"type": "webhook", "url": receiver.url}],
            }
        },
    )
    listed = run_meepo("plugins", cwd=tmp_path)
    assert any(
        line.startswith("webhook (meepo-webhook 0.1.0) sink: webhook")
        for line in listed.stdout.splitlines()
    ), listed.stdout
    result = run_meepo("run", "hook", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [e["name"] for r in receiver.requests for e in r["events"]]
    assert len(names) == 13 and names[0] == "test_write" and names[-1] == "test_delete"
    assert receiver.rows == {}  # the sample ends with every row deleted


def test_bad_url_is_a_config_error(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {"hook": {"source": {"type": "memory"}, "sinks": [{"type": "webhook", "url": "ftp://x"}]}},
    )
    result = run_meepo("run", "hook", cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "tool.meepo.pipelines.hook.sinks[0].url: must be an http:// or https:// URL"
        in result.stderr
    )


def test_an_unreachable_receiver_is_retried(tmp_path: Path) -> None:
    sink = WebhookSink("http://127.0.0.1:9/hook", timeout=1.0, headers={})
    sink.open(make_context(tmp_path))
    with pytest.raises(SinkError, match="cannot reach") as caught:
        sink.apply(contract_events()[0])
    assert caught.value.retryable is True
