"""Helpers for the meepo-serve tests: a real ``meepo serve`` process over jsonl pipelines,
reached over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from meepo_core import RowEvent, event_to_json
from meepo_core.testing import meepo_command, write_config

TOKEN = "s3cret-token-for-tests"
_URL = re.compile(r"pipelines on (http://\S+/)")


def append_events(path: Path, start: int, count: int, table: str = "t") -> None:
    """Append ``count`` one-event transactions (pk ``start``...) committed now."""
    with path.open("a", encoding="utf-8") as handle:
        for pk in range(start, start + count):
            event = RowEvent("s", table, "write", pk, None, {"id": pk}, None,
                             datetime.now(UTC))
            handle.write(event_to_json(event) + "\n")


def delivered(path: Path) -> list[int]:
    """The pks a jsonl sink wrote, in order (replays included); a line the sink is still
    writing (no newline yet) is left for the next look."""
    if not path.exists():
        return []
    complete = path.read_text().split("\n")[:-1]
    records = (json.loads(line) for line in complete if line.strip())
    return [record["pk"] for record in records if record.get("action") != "schema"]


def jsonl_pipeline(directory: Path, name: str, poll_interval: float = 0.05,
                   **settings: Any) -> dict[str, Any]:
    """A pipeline from ``NAME.in.jsonl`` to ``NAME.out.jsonl`` in ``directory``."""
    return {
        "source": {"type": "jsonl", "path": str(directory / f"{name}.in.jsonl"),
                   "poll_interval": poll_interval},
        "sinks": [{"type": "jsonl", "path": str(directory / f"{name}.out.jsonl")}],
        "checkpoint": f"file:{directory / f'{name}.cp.json'}",
        "dead_letter": f"file:{directory / f'{name}.dead.jsonl'}",
        "batch_wait": 0.05,
        "status_interval": 0,
        **settings,
    }


def wait_for(condition: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


class Service:
    """A ``meepo serve`` subprocess; ``client`` talks to it (no token unless given)."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None,
                 options: tuple[str, ...] = ()) -> None:
        self.config = config
        self.process = subprocess.Popen(
            meepo_command("--config", str(config), *options, "serve", "--port", "0", *args),
            cwd=config.parent, env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        self.lines: list[str] = []
        self._url = threading.Event()
        self.url = ""
        assert self.process.stderr is not None
        threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True).start()
        deadline = time.monotonic() + 30
        while not self._url.wait(0.1) and self.process.poll() is None and (
                time.monotonic() < deadline):
            pass
        if not self._url.is_set():
            self.kill()
            raise AssertionError("meepo serve did not start:\n" + "\n".join(self.lines))
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            found = _URL.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._url.set()

    def authorized(self, token: str = TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})

    def status(self, name: str) -> dict[str, Any]:
        response = self.client.get(f"/pipelines/{name}")
        response.raise_for_status()
        return dict(response.json())

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Service]]:
    """Start ``meepo serve`` on a config (``serve(config, *args, env=..., options=...)``,
    ``options`` going before ``serve``); every service started is killed after the test."""
    started: list[Service] = []

    def start(config: Path, *args: str, env: dict[str, str] | None = None,
              options: tuple[str, ...] = ()) -> Service:
        service = Service(config, *args, env={"MEEPO_SERVE_TOKEN": TOKEN, **(env or {})},
                          options=options)
        started.append(service)
        return service

    yield start
    for service in started:
        service.kill()


__all__ = ["TOKEN", "Service", "append_events", "delivered", "jsonl_pipeline", "wait_for",
           "write_config"]
