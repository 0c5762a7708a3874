"""The issue's proof at scale: 20 pipelines in one ``meepo serve``, one of them dead; a
SIGKILL under load; the idle footprint of 20 pipelines."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from .conftest import Service, append_events, delivered, jsonl_pipeline, wait_for, write_config

FLEET = 20
EVENTS = 200


def fleet(tmp_path: Path, dead: str | None = "p07") -> dict[str, dict[str, object]]:
    # the jsonl source's default poll interval, as an idle deployment would have it
    pipelines = {f"p{i:02d}": jsonl_pipeline(tmp_path, f"p{i:02d}", poll_interval=0.2)
                 for i in range(FLEET)}
    if dead is not None:  # its source's log does not exist: the source cannot be opened
        pipelines[dead]["source"] = {"type": "jsonl", "path": str(tmp_path / "gone.jsonl")}
    return pipelines


def test_twenty_pipelines_one_dead_then_fixed_by_a_reload(
        tmp_path: Path, serve: Callable[..., Service]) -> None:
    for i in range(FLEET):
        append_events(tmp_path / f"p{i:02d}.in.jsonl", 1, EVENTS)
    config = write_config(tmp_path, fleet(tmp_path), serve={"restart_backoff": 0.5})
    began = time.monotonic()
    service = serve(config)
    ready = wait_for(lambda: (r := service.client.get("/readyz")).status_code == 503
                     and "p07" in r.json()["not_ready"] and r, timeout=5, what="503 naming p07")
    assert time.monotonic() - began < 5
    assert list(ready.json()["not_ready"]) == ["p07"]
    assert "cannot open jsonl log" in ready.json()["not_ready"]["p07"]
    healthy = [f"p{i:02d}" for i in range(FLEET) if i != 7]
    for name in healthy:
        wait_for(lambda n=name: delivered(tmp_path / f"{n}.out.jsonl") == list(
            range(1, EVENTS + 1)), what=f"{name} delivering everything")
    failing = service.status("p07")
    assert failing["state"] in ("failed", "restarting") and failing["restarts"] >= 1
    assert "gone.jsonl" in failing["last_error"]

    # the idle footprint of 20 pipelines (stated in the README)
    process = psutil.Process(service.process.pid)
    process.cpu_percent()
    time.sleep(10)
    cpu = process.cpu_percent()
    rss = process.memory_info().rss / 2**20
    print(f"idle meepo serve, {FLEET} pipelines: RSS {rss:.1f} MiB, CPU {cpu:.2f} % of a core")
    assert rss < 150
    delays = [float(m.group(1)) for line in service.lines
              if (m := re.search(r"pipeline p07: restart \d+ in ([\d.]+)s", line))]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]  # exponential backoff, meanwhile

    # fix the dead pipeline's config (its log was written above); a reload restarts it alone
    write_config(tmp_path, fleet(tmp_path, dead=None), serve={"restart_backoff": 0.5})
    service.process.send_signal(signal.SIGHUP)
    wait_for(lambda: delivered(tmp_path / "p07.out.jsonl") == list(range(1, EVENTS + 1)),
             what="the fixed pipeline delivering")
    wait_for(lambda: service.client.get("/readyz").status_code == 200, timeout=5)
    assert any("started none, stopped none, restarted ['p07']" in line for line in service.lines)
    statuses = {p["name"]: p for p in service.client.get("/pipelines").json()["pipelines"]}
    for name in healthy:  # untouched: never restarted, nothing delivered twice
        assert statuses[name]["restarts"] == 0 and statuses[name]["state"] == "running"
        assert statuses[name]["events_total"] == EVENTS
    assert statuses["p07"]["state"] == "running"


def test_sigkill_under_load_then_restart_loses_nothing(
        tmp_path: Path, serve: Callable[..., Service]) -> None:
    config = write_config(tmp_path, fleet(tmp_path, dead=None))
    service = serve(config)
    total = 3000
    stop_writing = threading.Event()

    def write() -> None:  # every pipeline's source keeps growing, 100 events at a time
        for start in range(1, total + 1, 100):
            for i in range(FLEET):
                append_events(tmp_path / f"p{i:02d}.in.jsonl", start, 100)
            time.sleep(0.02)
        stop_writing.set()

    writer = threading.Thread(target=write)
    writer.start()
    wait_for(lambda: len(delivered(tmp_path / "p00.out.jsonl")) > 500, what="load")
    service.kill()  # SIGKILL, mid-delivery
    killed_at = {i: len(delivered(tmp_path / f"p{i:02d}.out.jsonl")) for i in range(FLEET)}
    saved = {i: checkpointed_events(tmp_path, f"p{i:02d}") for i in range(FLEET)}
    writer.join()
    assert any(count < total for count in killed_at.values())  # it died under load
    serve(config)
    for i in range(FLEET):
        out = tmp_path / f"p{i:02d}.out.jsonl"
        # a pipeline may have delivered everything before the kill: then the replay after
        # its checkpoint is what completes it, so wait for the count, not the set of pks
        expected = total + killed_at[i] - saved[i]
        wait_for(lambda o=out, n=expected: len(delivered(o)) >= n, timeout=60,
                 what=f"p{i:02d} complete")
        pks = delivered(out)
        assert set(pks) == set(range(1, total + 1))
        # resumed exactly from its checkpoint: what was delivered after the last checkpoint
        # comes again, nothing before it, nothing skipped
        assert len(pks) == total + killed_at[i] - saved[i]
        assert pks[killed_at[i]:] == list(range(saved[i] + 1, total + 1))


def checkpointed_events(directory: Path, name: str) -> int:
    """How many events of the pipeline's source log lie before its saved checkpoint."""
    checkpoint = directory / f"{name}.cp.json"
    if not checkpoint.exists():
        return 0
    offset = json.loads(checkpoint.read_text())["position"]["offset"]
    return (directory / f"{name}.in.jsonl").read_bytes()[:offset].count(b"\n")
