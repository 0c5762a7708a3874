"""The sink contract catches the mistakes it is meant to catch: fake sinks, each with one
deliberate flaw, fail the contract test for that flaw (and pass the others)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Self

import pytest

from meepo_core import Batch, Options, PipelineContext, Sink, SinkError
from meepo_core.testing import SinkContract, contract_row


class FakeFileSink(Sink):
    """A fake sink keeping the latest row per pk in a JSON file, rewritten and fsynced on
    every ``apply`` (durable, idempotent); an event whose name is ``"poison"`` goes to the
    dead letters."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, Any] = {}
        self.context: PipelineContext | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = options.path_value("path")
        options.done()
        return cls(path)

    def open(self, context: PipelineContext) -> None:
        self.context = context
        if self.path.exists():
            self.rows = json.loads(self.path.read_text())

    def apply(self, batch: Batch) -> None:
        assert self.context is not None
        for event in batch.events:
            if event.row.get("name") == "poison":
                self.context.dead_letter(event, "fake", "the fake refuses poison")
            elif event.action == "delete":
                self.rows.pop(str(event.pk), None)
            else:
                self.rows[str(event.pk)] = event.row["name"]
        self.write()

    def write(self) -> None:
        with self.path.open("w") as handle:
            json.dump(self.rows, handle)
            handle.flush()
            os.fsync(handle.fileno())


class FakeCloseOnlySink(FakeFileSink):
    """The flaw: the state is written only in ``close``, so it is not durable when
    ``apply`` returns."""

    def apply(self, batch: Batch) -> None:
        saved, self.write = self.write, lambda: None  # type: ignore[method-assign]
        try:
            super().apply(batch)
        finally:
            self.write = saved  # type: ignore[method-assign]

    def close(self) -> None:
        self.write()


class FakePoisonRaisingSink(FakeFileSink):
    """The flaw: an event it can never apply raises instead of being dead-lettered."""

    def apply(self, batch: Batch) -> None:
        if any(event.row.get("name") == "poison" for event in batch.events):
            raise SinkError("poison", retryable=False)
        super().apply(batch)


class FakeContract(SinkContract):
    """The contract over one fake class (not collected: the tests below call its tests)."""

    fake: type[FakeFileSink] = FakeFileSink

    def build(self) -> Sink:
        return self.fake.from_options(Options({"path": "state.json"}, "sink", self.tmp_path))

    def observable_state(self) -> Any:
        path = self.tmp_path / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def poison_batch(self) -> Batch:
        return Batch((self.contract_event("write", 99, contract_row(99, "poison")),), 6)


def contract(fake: type[FakeFileSink], tmp_path: Path) -> FakeContract:
    found = FakeContract()
    found.fake = fake
    found.tmp_path = tmp_path
    tmp_path.mkdir(parents=True, exist_ok=True)
    return found


def test_a_durable_sink_passes_the_durability_and_dead_letter_tests(tmp_path: Path) -> None:
    contract(FakeFileSink, tmp_path / "durable").test_state_is_durable_when_apply_returns()
    contract(FakeFileSink, tmp_path / "poison").test_poison_events_go_to_the_dead_letter_store()


def test_a_sink_writing_only_in_close_fails_the_durability_test(tmp_path: Path) -> None:
    flawed = contract(FakeCloseOnlySink, tmp_path / "replay")
    flawed.test_replay_leaves_the_same_state()  # what the contract checked before
    with pytest.raises(AssertionError, match="not durable when apply returned"):
        contract(FakeCloseOnlySink, tmp_path / "killed").test_state_is_durable_when_apply_returns()


def test_a_sink_raising_on_poison_fails_the_dead_letter_test(tmp_path: Path) -> None:
    flawed = contract(FakePoisonRaisingSink, tmp_path)
    with pytest.raises(SinkError, match="poison"):
        flawed.test_poison_events_go_to_the_dead_letter_store()


def test_a_sink_dead_lettering_around_the_context_fails_the_dead_letter_test(
    tmp_path: Path,
) -> None:
    class FakeUncountedSink(FakeFileSink):
        """The flaw: writes to the store directly, so the failure is never counted."""

        def apply(self, batch: Batch) -> None:
            assert self.context is not None
            for event in batch.events:
                if event.row.get("name") == "poison":
                    self.context.dead_letters.record(event, "fake", "uncounted")
            self.write()

    with pytest.raises(AssertionError, match=r"through context\.dead_letter"):
        contract(FakeUncountedSink, tmp_path).test_poison_events_go_to_the_dead_letter_store()
