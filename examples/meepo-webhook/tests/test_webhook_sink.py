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

from meepo_core.testing import SinkContract, run_meepo, write_config

SAMPLE = Path(__file__).parents[2] / "sample-events.jsonl"


class Receiver:
    """An HTTP server keeping the latest row per (table, pk), like a real webhook consumer."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.requests.append({"key": self.headers["Idempotency-Key"], **body})
                for event in body["events"]:
                    key = f"{event['table']}:{json.dumps(event['pk'])}"
                    if event["action"] == "delete":
                        receiver.rows.pop(key, None)
                    else:
                        receiver.rows[key] = event["after"]
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


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

    def snapshot(self) -> Any:
        return dict(self.receiver.rows)


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
