"""No credential in any response, the page or a log line: a pipeline whose Redis URL holds a
password fails against a closed port, and everything the service shows is searched for it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import TOKEN, Service, append_events, jsonl_pipeline, wait_for, write_config

pytestmark = pytest.mark.integration  # the redis sink comes from meepo-redis
pytest.importorskip("meepo_redis", reason="needs meepo-redis")

PASSWORD = "hunter2-very-secret"


def test_no_password_or_token_in_responses_page_or_logs(
        tmp_path: Path, serve: Callable[..., Service]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]  # closed again when the block ends
    append_events(tmp_path / "orders.in.jsonl", 1, 1)  # the sink fails applying it
    pipeline = jsonl_pipeline(tmp_path, "orders", max_retries=0)
    pipeline["sinks"] = [{"type": "redis",
                          "url": f"redis://meepo:{PASSWORD}@127.0.0.1:{closed_port}/0",
                          "keys": {"s.t": ["t:{id}"]}}]
    pipeline["dead_letter"] = f"file:{tmp_path / 'orders.dead.jsonl'}"
    # a second pipeline keeps its checkpoint in that Redis: the store's URL reaches errors
    checkpointed = jsonl_pipeline(tmp_path, "users")
    checkpointed["checkpoint"] = f"redis://meepo:{PASSWORD}@127.0.0.1:{closed_port}/0"
    (tmp_path / "users.in.jsonl").touch()
    service = serve(write_config(tmp_path, {"orders": pipeline, "users": checkpointed},
                                 serve={"restart_backoff": 0.2}), options=("--log-level", "debug"))
    status = wait_for(lambda: (s := service.status("orders"))["last_error"] and s)
    assert "127.0.0.1" in status["last_error"]  # the error is shown, its password is not
    with service.authorized() as client:
        client.post("/pipelines/orders/restart")
        bodies = [client.get(path).text for path in (
            "/", "/pipelines", "/pipelines/orders", "/readyz", "/metrics", "/openapi.json",
            "/pipelines/orders/dead-letters", "/pipelines/orders/plots/lag.svg")]
        bodies.append(client.post("/pipelines/orders/snapshots", json={}).text)
    wait_for(lambda: service.status("orders")["restarts"] >= 2)
    service.stop()
    shown = "\n".join([*bodies, *service.lines])
    assert PASSWORD not in shown
    assert TOKEN not in shown
    assert "meepo:***@" in shown  # redacted where it appeared
