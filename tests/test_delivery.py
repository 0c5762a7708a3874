"""The delivery engine: one retry and dead-letter policy for every path that applies events,
and the public embedding API around it (load_pipeline, Runner, Delivery)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meepo_core import (
    Batch,
    Delivery,
    MemoryCheckpointStore,
    PipelineSettings,
    RowEvent,
    Runner,
    SinkError,
    load_pipeline,
)
from meepo_core.builtin.memory import channel
from meepo_core.builtin.memory_sink import MemorySink
from meepo_core.dead_letters import FileDeadLetterStore
from meepo_core.testing import write_config

SETTINGS = PipelineSettings(max_retries=2, retry_backoff=0.001)


def batch(*pks: int, position: int | None = 1) -> Batch:
    return Batch(tuple(RowEvent("s", "t", "write", pk, None, {"id": pk}) for pk in pks), position)


@pytest.fixture(autouse=True)
def _faulty_sinks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins_for_tests"))


def flaky(tmp_path: Path, failures: int, permanent: bool = False) -> object:
    from faulty_sinks import FlakySinkFake  # type: ignore[import-not-found]

    return FlakySinkFake(tmp_path / "flaky.log", failures, permanent)


def test_a_failing_sink_is_retried_alone_then_applied(tmp_path: Path) -> None:
    out = MemorySink("out")
    sink = flaky(tmp_path, failures=2)
    with Delivery.to_sinks([out, sink], name="p", settings=SETTINGS,  # type: ignore[list-item]
                           dead_letters=FileDeadLetterStore(tmp_path / "dead.jsonl")) as engine:
        engine.apply(batch(1, 2))
        assert engine.metrics.failures[("sinks[1] FlakySinkFake", "retry")] == 2
    assert [e.pk for e in channel("out").events] == [1, 2]  # the healthy sink got it once
    assert (tmp_path / "flaky.log").read_text().count("\n") == 2


def test_exhausted_retries_stop_by_default(tmp_path: Path) -> None:
    engine = Delivery.to_sinks([flaky(tmp_path, failures=100)], name="p",  # type: ignore[list-item]
                               settings=SETTINGS,
                               dead_letters=FileDeadLetterStore(tmp_path / "dead.jsonl"))
    with engine, pytest.raises(SinkError, match="still failing after 3 attempts") as info:
        engine.apply(batch(1))
    assert info.value.retryable is False
    assert not (tmp_path / "dead.jsonl").exists()


@pytest.mark.parametrize("permanent", [False, True])
def test_dead_letter_policy_records_the_batch_durably_and_goes_on(
    tmp_path: Path, permanent: bool
) -> None:
    dead = tmp_path / "dead.jsonl"
    engine = Delivery.to_sinks([flaky(tmp_path, failures=100, permanent=permanent)],  # type: ignore[list-item]
                               name="p", settings=SETTINGS, when_exhausted="dead_letter",
                               dead_letters=FileDeadLetterStore(dead))
    with engine:
        engine.apply(batch(1, 2))
        # durable before apply returned: read it from the file while the store is open
        records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [r["event"]["pk"] for r in records] == [1, 2]
    assert {r["sink"] for r in records} == {"sinks[0] FlakySinkFake"}
    assert engine.metrics.failures[("sinks[0] FlakySinkFake", "dead_letter")] == 2
    expected_retries = 0 if permanent else SETTINGS.max_retries + 1
    assert engine.metrics.failures[("sinks[0] FlakySinkFake", "retry")] == expected_retries


def test_load_pipeline_runs_and_delivers_through_the_public_api(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"p": {
        "source": {"type": "memory", "name": "in"},
        "sinks": [{"type": "memory", "name": "out"}],
        "checkpoint": "file:cp.json",
    }})
    for pk in (1, 2):
        channel("in").publish([RowEvent("s", "t", "write", pk, None, {"id": pk})], position=pk)
    pipeline = load_pipeline("p", config)
    stats = Runner(pipeline).run(once=True)
    assert (stats.events, stats.position, stats.saved) == (2, 2, True)
    assert json.loads((tmp_path / "cp.json").read_text())["position"] == 2
    # deliver a batch built in code to the same sinks
    with load_pipeline("p", config).delivery() as engine:
        engine.apply(batch(9))
    assert [e.pk for e in channel("out").events] == [1, 2, 9]


def one_event_pipeline(tmp_path: Path, channel_name: str, checkpoint: str) -> Path:
    """Pipeline ``p``: the memory channel ``channel_name``, holding one event at position 1,
    into a null sink, with ``checkpoint``."""
    config = write_config(tmp_path, {"p": {
        "source": {"type": "memory", "name": channel_name}, "sinks": [{"type": "null"}],
        "checkpoint": checkpoint,
    }})
    channel(channel_name).publish([RowEvent("s", "t", "write", 1, None, {"id": 1})], position=1)
    return config


def test_a_side_run_leaves_the_pipeline_checkpoint_alone(tmp_path: Path) -> None:
    import dataclasses

    config = one_event_pipeline(tmp_path, "in", "file:cp.json")
    side = dataclasses.replace(load_pipeline("p", config), checkpoints=MemoryCheckpointStore(),
                               purpose="backfill")
    assert side.context().identity.endswith(":p#backfill")
    assert Runner(side).run(once=True).events == 1
    assert not (tmp_path / "cp.json").exists()


def test_identity_differs_between_two_projects_with_the_same_pipeline_name(tmp_path: Path) -> None:
    pipeline = {"source": {"type": "memory"}, "sinks": [{"type": "null"}]}
    first = load_pipeline("orders", write_config(tmp_path, {"orders": pipeline}))
    (tmp_path / "other").mkdir()
    second = load_pipeline("orders", write_config(tmp_path / "other", {"orders": pipeline}))
    assert first.context().identity != second.context().identity


def test_a_run_that_delivers_nothing_keeps_the_checkpoint_and_says_so(tmp_path: Path) -> None:
    config = one_event_pipeline(tmp_path, "in", "file:cp.json")
    first = Runner(load_pipeline("p", config)).run(once=True).summary()
    assert first.startswith("1 event in 1 batch, ") and first.endswith("checkpoint saved at 1")
    again = Runner(load_pipeline("p", config)).run(once=True, start=1)
    assert (again.events, again.batches, again.saved, again.position) == (0, 0, False, 1)
    assert again.summary().endswith("checkpoint unchanged at 1")


def test_a_run_without_a_kept_checkpoint_does_not_say_it_saved_one(tmp_path: Path) -> None:
    config = one_event_pipeline(tmp_path, "unkept", "none")
    summary = Runner(load_pipeline("p", config)).run(once=True).summary()
    assert summary.endswith('delivered up to 1 (checkpoint = "none": not kept)'), summary
