"""SourceHarness builds sources from options with overrides and drains ``once`` runs; shown
on the core's jsonl source, which needs no server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meepo_testkit.source_harness import SourceHarness

from meepo_core import Batch, RowEvent, event_to_json
from meepo_core.builtin.jsonl_source import JsonlSource
from meepo_core.testing.contracts import CONTRACT_STAMP, contract_row


@dataclass
class JsonlHarness(SourceHarness):
    source_class = JsonlSource

    log: Path

    def base_options(self) -> dict[str, Any]:
        return {"type": "jsonl", "path": str(self.log)}


def write_log(path: Path, pks: list[int]) -> None:
    events = [RowEvent("s", "t", "write", pk, None, contract_row(pk, "x"), None, CONTRACT_STAMP,
                       None, pk) for pk in pks]
    path.write_text("".join(event_to_json(e) + "\n" for e in events), encoding="utf-8")


def test_drain_reads_every_event_and_resumes_from_the_last_position(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write_log(log, [1, 2, 3])
    harness = JsonlHarness(log, tmp_path=tmp_path)
    events, position = harness.drain()
    assert [e.pk for e in events] == [1, 2, 3]
    assert harness.drain(position)[0] == []  # nothing after the last position
    assert len(harness.contexts) == 2 and harness.contexts[0].pipeline == "source-tests"


def test_options_take_overrides_and_none_removes_a_key(tmp_path: Path) -> None:
    harness = JsonlHarness(tmp_path / "a.jsonl", tmp_path=tmp_path)
    assert harness.options(path="b.jsonl") == {"type": "jsonl", "path": "b.jsonl"}
    assert harness.options(path=None) == {"type": "jsonl"}
    other = tmp_path / "other.jsonl"
    write_log(other, [7])
    batches = harness.batches(path=str(other))
    assert all(isinstance(b, Batch) for b in batches)
    assert [e.pk for b in batches for e in b.events] == [7]
