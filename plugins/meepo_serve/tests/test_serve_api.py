"""The JSON API of a real ``meepo serve`` process over jsonl pipelines: status, control,
dead letters, OpenAPI, metrics, and every kind of bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from meepo_serve.redaction import redact

from meepo_core import RowEvent, dead_letter_record
from meepo_core.testing import meepo_command, run_meepo

from .conftest import (
    TOKEN,
    Service,
    append_events,
    delivered,
    jsonl_pipeline,
    wait_for,
    write_config,
)


def two_pipelines(tmp_path: Path) -> Path:
    for name in ("orders", "users"):
        append_events(tmp_path / f"{name}.in.jsonl", 1, 5)
    return write_config(tmp_path, {name: jsonl_pipeline(tmp_path, name)
                                   for name in ("orders", "users")})


def test_status_reports_what_each_pipeline_delivered(
        tmp_path: Path, serve: Callable[..., Service]) -> None:
    service = serve(two_pipelines(tmp_path))
    wait_for(lambda: len(delivered(tmp_path / "users.out.jsonl")) == 5, what="delivery")
    listing = service.client.get("/pipelines").json()["pipelines"]
    assert [p["name"] for p in listing] == ["orders", "users"]
    status = wait_for(lambda: (s := service.status("users"))["checkpoint"] and s)
    size = (tmp_path / "users.in.jsonl").stat().st_size
    assert status["state"] == "running"
    assert status["events_total"] == 5
    assert status["position"] == {"offset": size} == status["checkpoint"]
    assert status["lag_seconds"] == 0.0  # idle and caught up
    assert status["restarts"] == 0 and status["last_error"] is None
    assert service.client.get("/healthz").status_code == 200
    assert service.client.get("/readyz").json() == {"ready": True, "not_ready": {}}
    metrics = service.client.get("/metrics").text
    for name in ("orders", "users"):  # the core's metrics, every pipeline
        assert f'meepo_events_total{{pipeline="{name}",table="s.t",action="write"}} 5' in metrics
    assert 'meepo_serve_restarts_total{pipeline="users"} 0' in metrics
    spec = service.client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/pipelines/{name}/pause", "/readyz", "/pipelines/{name}/dead-letters"} <= set(
        spec["paths"])
    assert "PipelineStatus" in spec["components"]["schemas"]


def test_pause_resume_and_restart(tmp_path: Path, serve: Callable[..., Service]) -> None:
    service = serve(two_pipelines(tmp_path))
    out = tmp_path / "orders.out.jsonl"
    wait_for(lambda: len(delivered(out)) == 5)
    with service.authorized() as client:
        answer = client.post("/pipelines/orders/pause")
        assert answer.status_code == 200 and answer.json()["state"] == "paused"
        time.sleep(0.5)
        append_events(tmp_path / "orders.in.jsonl", 6, 5)
        append_events(tmp_path / "users.in.jsonl", 6, 5)
        wait_for(lambda: len(delivered(tmp_path / "users.out.jsonl")) == 10)
        time.sleep(1.0)
        assert len(delivered(out)) == 5  # paused: the source is not read
        assert service.status("orders")["state"] == "paused"
        assert client.post("/pipelines/orders/resume").json()["state"] == "running"
        wait_for(lambda: len(delivered(out)) == 10, what="delivery after resume")
        assert client.post("/pipelines/orders/restart").status_code == 202
        wait_for(lambda: service.status("orders")["restarts"] == 1
                 and service.status("orders")["state"] == "running")
        append_events(tmp_path / "orders.in.jsonl", 11, 1)
        wait_for(lambda: len(delivered(out)) == 11)
    assert delivered(out) == list(range(1, 12))  # resumed from its checkpoint: no repeat
    assert service.status("users")["restarts"] == 0


def test_bad_requests_are_refused_with_the_reason(
        tmp_path: Path, serve: Callable[..., Service]) -> None:
    service = serve(two_pipelines(tmp_path))
    unknown = service.client.get("/pipelines/nosuch")
    assert unknown.status_code == 404
    assert "nosuch" in unknown.json()["error"] and "orders, users" in unknown.json()["error"]
    missing = service.client.post("/pipelines/orders/pause")
    assert missing.status_code == 401 and "Bearer" in missing.json()["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    with service.authorized("wrong") as client:
        assert client.post("/pipelines/orders/pause").status_code == 401
    assert service.status("orders")["state"] == "running"  # nothing changed
    with service.authorized() as client:
        assert client.post("/pipelines/nosuch/pause").status_code == 404
        wrong_type = client.post("/pipelines/orders/snapshots", content=b'{"tables": "s.t"}')
        assert wrong_type.status_code == 400
        assert wrong_type.json()["field"] == "tables"
        unknown_field = client.post("/pipelines/orders/dead-letters",
                                    content=b'{"indexs": [1]}')
        assert unknown_field.status_code == 400
        assert unknown_field.json()["field"] == "indexs"
        not_json = client.post("/pipelines/orders/snapshots", content=b"{tables")
        assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
        no_snapshots = client.post("/pipelines/orders/snapshots", json={})
        assert no_snapshots.status_code == 400
        assert "cannot snapshot" in no_snapshots.json()["error"]
    for line in service.lines:
        assert TOKEN not in line


def test_dead_letters_are_listed_and_replayed_to_the_sink_that_failed_them(
        tmp_path: Path, serve: Callable[..., Service]) -> None:
    store = tmp_path / "orders.dead.jsonl"
    letters = [RowEvent("s", "t", "write", pk, None, {"id": pk}, None, datetime.now(UTC))
               for pk in (101, 102)]
    store.write_text("".join(json.dumps(dead_letter_record(e, "sinks[0] jsonl", "HTTP 400"))
                             + "\n" for e in letters))
    service = serve(two_pipelines(tmp_path))
    out = tmp_path / "orders.out.jsonl"
    wait_for(lambda: len(delivered(out)) == 5)
    listing = service.client.get("/pipelines/orders/dead-letters").json()
    assert (listing["total"], listing["pending"]) == (2, 2)
    assert [(x["index"], x["event"]["pk"], x["error"]) for x in listing["letters"]] == [
        (0, 101, "HTTP 400"), (1, 102, "HTTP 400")]
    assert service.status("orders")["dead_letters"] == 2
    with service.authorized() as client:
        answer = client.post("/pipelines/orders/dead-letters", json={"indexes": [1]})
        assert answer.json() == {"pipeline": "orders", "replayed": [1], "failed": {}}
        assert delivered(out)[-1] == 102
        assert client.post("/pipelines/orders/dead-letters", json={"indexes": [7]}
                           ).json()["field"] == "indexes"
        rest = client.post("/pipelines/orders/dead-letters").json()
        assert rest["replayed"] == [0]
    assert delivered(out)[5:] == [102, 101]
    listing = service.client.get("/pipelines/orders/dead-letters").json()
    assert listing["pending"] == 0 and all(x["replayed"] for x in listing["letters"])


def test_sigterm_stops_every_pipeline_gracefully_within_the_bound(
        tmp_path: Path, serve: Callable[..., Service]) -> None:
    config = two_pipelines(tmp_path)
    service = serve(config)
    for name in ("orders", "users"):
        append_events(tmp_path / f"{name}.in.jsonl", 6, 3000)
    time.sleep(0.3)  # under load
    began = time.monotonic()
    assert service.stop() == 0
    assert time.monotonic() - began < 15
    assert service.lines[-1] == "meepo serve: stopped"
    for name in ("orders", "users"):
        saved = json.loads((tmp_path / f"{name}.cp.json").read_text())["position"]["offset"]
        out = delivered(tmp_path / f"{name}.out.jsonl")
        # the checkpoint is where delivery ended: everything before it, nothing after
        text = (tmp_path / f"{name}.in.jsonl").read_bytes()[:saved].decode()
        assert len(out) == text.count("\n")


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = two_pipelines(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_meepo("--config", str(config), "serve", "--port", str(port),
                           cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"meepo: error: --port: 127.0.0.1:{port} is already in use; stop what listens there "
        "or pick another port (--port, or port in [tool.meepo.serve]; 0 picks a free one)"]
    assert not (tmp_path / "orders.out.jsonl").exists()  # nothing started


def test_a_public_address_without_a_token_is_refused(tmp_path: Path) -> None:
    config = two_pipelines(tmp_path)
    result = subprocess.run(
        meepo_command("--config", str(config), "serve", "--host", "0.0.0.0", "--port", "0"),
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if k != "MEEPO_SERVE_TOKEN"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "meepo: error: --host: 0.0.0.0 is not a loopback address and no token is set; export "
        "MEEPO_SERVE_TOKEN (every change through the API then needs it), or listen on "
        "127.0.0.1"]


def test_credentials_are_redacted() -> None:
    assert redact("cannot connect to postgresql://repl:hunter2@db:5432/shop") == (
        "cannot connect to postgresql://repl:***@db:5432/shop")
    assert redact("dsn host=db password=hunter2 user=x") == "dsn host=db password=*** user=x"
    assert redact("token abc123 refused", ("abc123",)) == "token *** refused"


def test_sighup_reloads_only_what_changed(tmp_path: Path, serve: Callable[..., Service]) -> None:
    config = two_pipelines(tmp_path)
    service = serve(config)
    wait_for(lambda: len(delivered(tmp_path / "users.out.jsonl")) == 5)
    pipelines = {"users": jsonl_pipeline(tmp_path, "users", batch_size=10),
                 "added": jsonl_pipeline(tmp_path, "added")}
    append_events(tmp_path / "added.in.jsonl", 1, 2)
    write_config(tmp_path, pipelines)
    service.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(delivered(tmp_path / "added.out.jsonl")) == 2, what="added pipeline")
    names = [p["name"] for p in service.client.get("/pipelines").json()["pipelines"]]
    assert names == ["added", "users"]
    assert any("started ['added'], stopped ['orders'], restarted ['users']" in line
               for line in service.lines)
    with service.authorized() as client:
        again = client.post("/reload").json()
    assert again == {"started": [], "stopped": [], "restarted": [],
                     "unchanged": ["added", "users"]}
    (tmp_path / "pyproject.toml").write_text("[tool.meepo\n")
    with service.authorized() as client:
        broken = client.post("/reload")
    assert broken.status_code == 400 and "nothing changed" in broken.json()["error"]
    assert service.status("users")["state"] == "running"


def test_an_unknown_pipeline_name_on_the_command_line_is_exit_2(tmp_path: Path) -> None:
    config = two_pipelines(tmp_path)
    result = run_meepo("--config", str(config), "serve", "orders", "nosuch", "--port", "0",
                       cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"meepo: error: tool.meepo.pipelines.nosuch: no such pipeline in {config}; configured "
        "pipelines: orders, users"]


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    result = run_meepo("--config", str(two_pipelines(tmp_path)), "serve", "--port", "0",
                       cwd=tmp_path, env={"MEEPO_SERVE_TOKEN": "short"}, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "meepo: error: MEEPO_SERVE_TOKEN: the token is too short; use at least 16 characters, "
        "e.g. the output of python3 -c 'import secrets; print(secrets.token_urlsafe())'"]


def test_a_letter_that_cannot_be_replayed_stays_pending_with_the_reason(
        tmp_path: Path, serve: Callable[..., Service]) -> None:
    event = RowEvent("s", "t", "write", 7, None, {"id": 7}, None, datetime.now(UTC))
    (tmp_path / "orders.dead.jsonl").write_text(
        json.dumps(dead_letter_record(event, "sinks[5] webhook", "HTTP 500")) + "\n")
    service = serve(two_pipelines(tmp_path))
    with service.authorized() as client:
        answer = client.post("/pipelines/orders/dead-letters").json()
    assert answer == {"pipeline": "orders", "replayed": [],
                      "failed": {"0": "the pipeline has no sink 'sinks[5] webhook' any more"}}
    listing = service.client.get("/pipelines/orders/dead-letters").json()
    assert (listing["pending"], listing["letters"][0]["replayed"]) == (1, False)
