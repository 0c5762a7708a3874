"""Who owns the position: the checkpoint store by default, or the one transactional sink
that claims it; the runner resumes from the owner, and a pipeline has one owner, last."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import pytest

from meepo_core import (
    Batch,
    Options,
    Position,
    RowEvent,
    Runner,
    TransactionalSink,
    event_to_json,
    join_position_parts,
    position_parts,
)
from meepo_core.builtin.jsonl_source import JsonlSource
from meepo_core.builtin.null_sink import NullSink
from meepo_core.checkpoints import FileCheckpointStore, write_atomically
from meepo_core.dead_letters import FileDeadLetterStore
from meepo_core.errors import ConfigError
from meepo_core.pipeline import Pipeline
from meepo_core.position_owner import SinkPositionStore, position_store
from meepo_core.settings import PipelineSettings


class FileOwnerSink(TransactionalSink):
    """Keeps every applied event's pk and the pipeline's position in one JSON file, replaced
    atomically per batch: data and position change together or not at all."""

    def __init__(self, path: Path, claims: bool = True) -> None:
        self.path = path
        self.claims = claims
        self.pipeline = ""

    @classmethod
    def from_options(cls, options: Options) -> Self:
        raise NotImplementedError  # built in code only

    @property
    def claims_position(self) -> bool:
        return self.claims

    def _state(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"applied": [], "positions": {}}
        state: dict[str, Any] = json.loads(self.path.read_text())
        return state

    def stored_position(self, pipeline: str) -> Position | None:
        return self._state()["positions"].get(pipeline)

    def open(self, context: Any) -> None:
        self.pipeline = context.pipeline

    def apply(self, batch: Batch) -> None:
        state = self._state()
        state["applied"] += [event.pk for event in batch.events]
        if batch.position is not None:
            state["positions"][self.pipeline] = batch.position
        write_atomically(self.path, json.dumps(state))


def log_events(path: Path, first: int, count: int) -> None:
    with path.open("a") as handle:
        for pk in range(first, first + count):
            handle.write(event_to_json(RowEvent("s", "t", "write", pk, None, {"id": pk})) + "\n")


def pipeline(tmp_path: Path, sinks: list[tuple[str, Any]]) -> Pipeline:
    checkpoints = position_store(sinks, FileCheckpointStore(tmp_path / "p.json", "p"), "p",
                                 "pipelines.p.sinks")
    return Pipeline("p", JsonlSource(tmp_path / "log.jsonl"), sinks, checkpoints,
                    FileDeadLetterStore(tmp_path / "dead.jsonl"),
                    PipelineSettings(batch_size=3, snapshot="never"), tmp_path, "p")


def test_the_runner_resumes_from_the_owner_not_the_checkpoint_file(tmp_path: Path) -> None:
    log_events(tmp_path / "log.jsonl", 1, 10)
    sink = FileOwnerSink(tmp_path / "owner.json")
    first = pipeline(tmp_path, [("sinks[0] owner", sink)])
    assert isinstance(first.checkpoints, SinkPositionStore)
    assert Runner(first).run(once=True).events == 10
    (tmp_path / "p.json").unlink()  # the checkpoint file is not where the position lives
    log_events(tmp_path / "log.jsonl", 11, 4)
    stats = Runner(pipeline(tmp_path, [("sinks[0] owner", sink)])).run(once=True)
    assert stats.events == 4
    assert json.loads(sink.path.read_text())["applied"] == list(range(1, 15))


def test_without_a_claim_the_checkpoint_store_owns_the_position(tmp_path: Path) -> None:
    sink = FileOwnerSink(tmp_path / "owner.json", claims=False)
    assert isinstance(pipeline(tmp_path, [("sinks[0] owner", sink)]).checkpoints,
                      FileCheckpointStore)


def test_two_owners_or_an_owner_before_other_sinks_are_refused(tmp_path: Path) -> None:
    one, two = FileOwnerSink(tmp_path / "1.json"), FileOwnerSink(tmp_path / "2.json")
    with pytest.raises(ConfigError, match=r"sinks\[0\] a and sinks\[1\] b both claim"):
        pipeline(tmp_path, [("sinks[0] a", one), ("sinks[1] b", two)])
    with pytest.raises(ConfigError, match=r"sinks\[0\] a owns .* not the last sink"):
        pipeline(tmp_path, [("sinks[0] a", one), ("sinks[1] null", NullSink())])
    assert isinstance(pipeline(tmp_path, [("sinks[0] null", NullSink()), ("sinks[1] a", one)])
                      .checkpoints, SinkPositionStore)


def test_partitioned_positions_split_into_parts_and_back() -> None:
    position = {"group": "g", "epoch": 3, "offsets": {"t": {"0": 5, "1": 7}, "u": {"0": 1}}}
    parts = position_parts(position)
    assert parts == {"t/0": 5, "t/1": 7, "u/0": 1}
    assert join_position_parts(parts) == {"offsets": {"t": {"0": 5, "1": 7}, "u": {"0": 1}}}
    assert position_parts({"lsn": "0/16B3748"}) == {"": {"lsn": "0/16B3748"}}
    assert join_position_parts({"": {"lsn": "0/16B3748"}}) == {"lsn": "0/16B3748"}
    assert join_position_parts({}) is None
