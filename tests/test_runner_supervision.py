"""What supervisors (``meepo serve``) use of a running :class:`Runner`: pause and resume of
the source, the delivered position, and the lag (also when idle)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meepo_core.builtin.memory import channel
from meepo_core.config import load_config
from meepo_core.errors import ConfigError
from meepo_core.events import RowEvent
from meepo_core.pipeline import build_pipeline
from meepo_core.plugins import load_registry
from meepo_core.runner import Runner
from meepo_core.testing import write_config


def build(tmp_path: Path, **settings: Any) -> Runner:
    pipeline = {
        "source": {"type": "memory", "name": "in"},
        "sinks": [{"type": "memory", "name": "out"}],
        "checkpoint": "file:cp.json",
        **settings,
    }
    config = load_config(write_config(tmp_path, {"p": pipeline}))
    return Runner(build_pipeline(config, "p", load_registry([], entry_points=False)))


def publish(start: int, count: int) -> None:
    for pk in range(start, start + count):
        channel("in").publish([RowEvent("s", "t", "write", pk, None, {"id": pk})], position=pk)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Runner]:
    runner = build(tmp_path)
    thread = threading.Thread(target=runner.run)
    thread.start()
    yield runner
    runner.stop()
    thread.join(10)
    assert not thread.is_alive()


def test_pause_keeps_the_source_unread_until_resume(running: Runner) -> None:
    publish(1, 3)
    wait_for(lambda: len(channel("out").events) == 3)
    running.pause()
    assert running.paused
    time.sleep(0.3)  # the reader notices between two batches
    publish(4, 3)
    time.sleep(1.0)
    assert len(channel("out").events) <= 4  # at most the batch being read when paused
    assert channel("in").pending  # the rest stays in the source
    running.resume()
    wait_for(lambda: len(channel("out").events) == 6)
    assert running.delivered_position == 6


def test_a_stop_while_paused_ends_the_run_promptly(tmp_path: Path) -> None:
    runner = build(tmp_path)
    thread = threading.Thread(target=runner.run)
    thread.start()
    publish(1, 2)
    wait_for(lambda: len(channel("out").events) == 2)
    runner.pause()
    time.sleep(0.5)
    began = time.monotonic()
    runner.stop()
    thread.join(10)
    assert time.monotonic() - began < 2  # not the 5 s grace for a source that hangs
    assert json.loads((tmp_path / "cp.json").read_text())["position"] == 2


def test_lag_grows_while_a_sink_is_stalled_and_is_zero_when_idle(running: Runner) -> None:
    gate = threading.Event()
    gate.set()
    original = running.delivery.apply

    def stalled_apply(batch: Any) -> None:  # a sink that hangs until the gate opens
        gate.wait()
        original(batch)

    running.delivery.apply = stalled_apply  # type: ignore[method-assign]
    publish(1, 1)
    wait_for(lambda: len(channel("out").events) == 1)
    time.sleep(0.5)
    assert running.lag_seconds() == 0.0  # idle: not behind, however old the last event
    gate.clear()
    publish(2, 1)
    time.sleep(1.5)
    assert 1.2 <= running.lag_seconds() <= 1.9
    publish(3, 1)  # newer events behind the stalled one do not lower the lag
    time.sleep(0.5)
    assert 1.7 <= running.lag_seconds() <= 2.4
    gate.set()
    wait_for(lambda: len(channel("out").events) == 3)
    wait_for(lambda: running.lag_seconds() == 0.0, timeout=2)


def test_max_lag_is_a_validated_pipeline_setting(tmp_path: Path) -> None:
    assert build(tmp_path, max_lag=30).settings.max_lag == 30
    assert build(tmp_path).settings.max_lag is None
    with pytest.raises(ConfigError, match=r"pipelines\.p\.max_lag"):
        build(tmp_path, max_lag=-1)
