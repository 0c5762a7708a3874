"""The runner: ordered delivery, retries with backoff, checkpoints, crash and stop safety."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from meepo_core.builtin.memory import channel
from meepo_core.checkpoints import MemoryCheckpointStore
from meepo_core.config import load_config
from meepo_core.errors import SinkError
from meepo_core.events import RowEvent
from meepo_core.pipeline import build_pipeline
from meepo_core.plugins import load_registry
from meepo_core.runner import Runner
from meepo_core.testing import meepo_command, run_meepo, write_config

SAMPLE = Path(__file__).parents[1] / "examples" / "sample-events.jsonl"
ORIGINAL_EXAMPLE = [
    "test_write 1",
    "test_write 2",
    "test_write 3",
    "test_write 4",
    "test_update 1",
    "test_update 2",
    "test_update 2",
    "test_update 3",
    "test_update 4",
    "test_delete 2",
    "test_delete 3",
    "test_delete 4",
    "test_delete 1",
]


def build(tmp_path: Path, pipeline: dict[str, Any], name: str = "p") -> Runner:
    config = load_config(write_config(tmp_path, {name: pipeline}, plugins=["faulty_sinks"]))
    registry = load_registry(["faulty_sinks"], entry_points=False)
    return Runner(build_pipeline(config, name, registry))


def publish(name: str, count: int, start: int = 1) -> None:
    for pk in range(start, start + count):
        channel(name).publish([RowEvent("s", "t", "write", pk, None, {"id": pk})], position=pk)


def recorded(path: Path) -> list[list[Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(autouse=True)
def _faulty_sinks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins_for_tests"))


def test_replaying_the_sample_log_prints_the_original_meepo_example(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {"demo": {"source": {"type": "jsonl", "path": str(SAMPLE)}, "sinks": [{"type": "print"}]}},
    )
    result = run_meepo("run", "demo", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ORIGINAL_EXAMPLE
    saved = json.loads((tmp_path / ".meepo" / "demo.json").read_text())
    assert saved["position"] == {"offset": SAMPLE.stat().st_size}
    again = run_meepo("run", "demo", "--once", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == ""  # resumed after the checkpoint


def test_transient_sink_failures_are_retried_then_delivered(tmp_path: Path) -> None:
    publish("in", 3)
    runner = build(
        tmp_path,
        {
            "source": {"type": "memory", "name": "in"},
            "sinks": [
                {"type": "memory", "name": "out"},
                {"type": "flaky-fake", "path": "flaky.log", "failures": 3},
            ],
            "retry_backoff": 0.01,
            "checkpoint": "file:cp.json",
        },
    )
    stats = runner.run(once=True)
    assert stats.events == 3
    assert [pk for _, pk in recorded(tmp_path / "flaky.log")] == [1, 2, 3]
    # the healthy sink got each batch exactly once: only the failing sink is retried
    assert [e.pk for e in channel("out").events] == [1, 2, 3]
    assert runner.metrics.failures[("sinks[1] flaky-fake", "retry")] == 3
    assert json.loads((tmp_path / "cp.json").read_text())["position"] == 3


def test_exhausted_retries_stop_without_moving_the_checkpoint(tmp_path: Path) -> None:
    publish("in", 2)
    runner = build(
        tmp_path,
        {
            "source": {"type": "memory", "name": "in"},
            "sinks": [{"type": "flaky-fake", "path": "flaky.log", "failures": 100}],
            "retry_backoff": 0.001,
            "max_retries": 2,
            "checkpoint": "file:cp.json",
        },
    )
    with pytest.raises(SinkError, match="still failing after 3 attempts: ConnectionError"):
        runner.run(once=True)
    assert not (tmp_path / "cp.json").exists()


def test_permanent_failure_is_not_retried(tmp_path: Path) -> None:
    publish("in", 1)
    runner = build(
        tmp_path,
        {
            "source": {"type": "memory", "name": "in"},
            "sinks": [{"type": "flaky-fake", "path": "f.log", "permanent": True}],
            "checkpoint": "file:cp.json",
        },
    )
    with pytest.raises(SinkError, match="rejected by the destination"):
        runner.run(once=True)
    assert runner.metrics.failures == {}
    assert not (tmp_path / "cp.json").exists()


def test_checkpoint_resumes_after_the_last_applied_batch(tmp_path: Path) -> None:
    pipeline = {
        "source": {"type": "memory", "name": "in"},
        "sinks": [{"type": "memory", "name": "out"}],
        "checkpoint": "file:cp.json",
    }
    publish("in", 3)
    build(tmp_path, pipeline).run(once=True)
    publish("in", 5)  # positions 1..5 again: 1..3 are behind the checkpoint
    build(tmp_path, pipeline).run(once=True)
    assert [e.pk for e in channel("out").events] == [1, 2, 3, 4, 5]


def test_back_pressure_bounds_the_queue(tmp_path: Path) -> None:
    publish("in", 200)
    runner = build(
        tmp_path,
        {
            "source": {"type": "memory", "name": "in"},
            "sinks": [{"type": "memory", "name": "out"}],
            "queue_size": 2,
            "checkpoint": "none",
        },
    )
    seen: list[int] = []
    original = runner.delivery.apply

    def slow_apply(batch: Any) -> None:
        seen.append(runner._queue.qsize())
        time.sleep(0.001)
        original(batch)

    runner.delivery.apply = slow_apply  # type: ignore[method-assign]
    runner.run(once=True)
    assert len(channel("out").events) == 200
    assert max(seen) <= 2


def test_stop_finishes_queued_batches_and_saves_the_checkpoint(tmp_path: Path) -> None:
    runner = build(
        tmp_path,
        {
            "source": {"type": "memory", "name": "in"},
            "sinks": [{"type": "memory", "name": "out"}],
            "checkpoint": "file:cp.json",
        },
    )
    publish("in", 5)
    thread = threading.Thread(target=runner.run)
    thread.start()
    deadline = time.monotonic() + 10
    while len(channel("out").events) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert json.loads((tmp_path / "cp.json").read_text())["position"] == 5


def test_sigkill_between_apply_and_checkpoint_redelivers(
    tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    write_config(
        tmp_path,
        {
            "p": {
                "source": {"type": "jsonl", "path": str(SAMPLE)},
                "sinks": [
                    {"type": "jsonl", "path": "out.jsonl"},
                    {"type": "blocking-fake", "path": "received.log", "marker": "applied"},
                ],
                "checkpoint": "file:cp.json",
                "batch_size": 5,
            }
        },
        plugins=["faulty_sinks"],
    )
    env = {**plugin_env, "MEEPO_TEST_BLOCK": "1"}
    process = subprocess.Popen(
        meepo_command("run", "p"),
        cwd=tmp_path,
        env={**__import__("os").environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "applied").exists():
            assert time.monotonic() < deadline, "the blocking sink was never reached"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        process.kill()
    first_run = recorded(tmp_path / "received.log")
    assert first_run, "the first batch was applied before the kill"
    assert not (tmp_path / "cp.json").exists(), "no checkpoint past an unfinished batch"

    result = run_meepo("run", "p", "--once", cwd=tmp_path, env=plugin_env)
    assert result.returncode == 0, result.stderr
    received = recorded(tmp_path / "received.log")
    # at-least-once: the killed batch is delivered again, then everything else
    assert received[: len(first_run)] == received[len(first_run) : 2 * len(first_run)]
    assert [f"{name} {pk}" for name, pk in received[len(first_run) :]] == ORIGINAL_EXAMPLE
    # the jsonl sink skips re-delivered sequences, so the audit log has each event once
    names = [json.loads(line)["name"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(names) == len(ORIGINAL_EXAMPLE)


def test_sigterm_stops_gracefully_with_exit_0(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(SAMPLE.read_text())
    write_config(
        tmp_path,
        {
            "p": {
                "source": {"type": "jsonl", "path": str(log)},
                "sinks": [{"type": "print"}],
                "checkpoint": "file:cp.json",
            }
        },
    )
    process = subprocess.Popen(
        meepo_command("run", "p"),
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "cp.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert out.splitlines() == ORIGINAL_EXAMPLE
    assert "stopping pipeline p" in err
    assert json.loads((tmp_path / "cp.json").read_text())["position"] == {
        "offset": log.stat().st_size
    }


def test_metrics_endpoint_and_status_line(tmp_path: Path) -> None:
    runner = build(
        tmp_path,
        {
            "source": {"type": "memory", "name": "in"},
            "sinks": [{"type": "null"}],
            "metrics_port": 0,
            "checkpoint": "none",
        },
    )
    publish("in", 4)
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while runner.metrics.events_total < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        status = runner.metrics.status_line()
        assert "pipeline=p" in status and "events=4" in status and "lag=" in status
        text = runner.metrics.prometheus()
        assert 'meepo_events_total{pipeline="p",table="s.t",action="write"} 4' in text
        batches = runner.metrics.batches  # 1 to 4: waiting transactions may be merged
        assert 1 <= batches <= 4
        assert f'meepo_batch_seconds_count{{pipeline="p"}} {batches}' in text
    finally:
        runner.stop()
        thread.join(10)


def test_metrics_http_endpoint_serves_prometheus_text(tmp_path: Path) -> None:
    from meepo_core.metrics import Metrics, serve_metrics

    metrics = Metrics("orders")
    server = serve_metrics([metrics], 0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics").read()
    finally:
        server.shutdown()
    assert b"# TYPE meepo_lag_seconds gauge" in body


def test_memory_checkpoint_store_roundtrip() -> None:
    store = MemoryCheckpointStore()
    assert store.load() is None
    store.save({"file": "b.1", "pos": 4})
    assert store.load() == {"file": "b.1", "pos": 4}


def test_transactions_waiting_behind_a_slow_sink_are_merged_into_bigger_batches(
    tmp_path: Path,
) -> None:
    publish("in", 50)
    runner = build(
        tmp_path,
        {
            "source": {"type": "memory", "name": "in"},
            "sinks": [{"type": "memory", "name": "out"}],
            "batch_size": 20,
            "checkpoint": "file:cp.json",
        },
    )
    original = runner.delivery.apply

    def slow_apply(batch: Any) -> None:
        time.sleep(0.05)  # the source queues up transactions meanwhile
        original(batch)

    runner.delivery.apply = slow_apply  # type: ignore[method-assign]
    runner.run(once=True)
    batches = channel("out").batches
    assert [e.pk for e in channel("out").events] == list(range(1, 51))  # all, in order
    assert len(batches) < 50 and max(len(b) for b in batches) <= 20
    assert all(b.position == b.events[-1].pk for b in batches)  # each ends a transaction
    assert json.loads((tmp_path / "cp.json").read_text())["position"] == 50
