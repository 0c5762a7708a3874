"""The built-in sinks and sources pass the same contract suites as plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meepo_core.builtin.jsonl_source import JsonlSource
from meepo_core.events import RowEvent
from meepo_core.serialization import event_from_json, event_to_json
from meepo_core.source import Source
from meepo_core.testing import SinkContract, SourceContract


class TestJsonlSinkContract(SinkContract):
    sink_type = "jsonl"

    def sink_options(self) -> dict[str, Any]:
        return {"path": "audit.jsonl"}

    def snapshot(self) -> Any:
        return (self.tmp_path / "audit.jsonl").read_text().splitlines()


class TestJsonlSourceContract(SourceContract):
    def make_source(self) -> Source:
        (self.tmp_path / "log.jsonl").touch()
        return JsonlSource(self.tmp_path / "log.jsonl", poll_interval=0.05)

    def produce(self, count: int) -> list[Any]:
        path = self.tmp_path / "log.jsonl"
        existing = path.read_text().count("\n") if path.exists() else 0
        pks = list(range(existing + 1, existing + count + 1))
        with path.open("a") as handle:
            for pk in pks:
                event = RowEvent("s", "t", "write", pk, None, {"id": pk}, None, txid=None)
                handle.write(event_to_json(event) + "\n")
        return pks


def test_jsonl_sink_cuts_a_torn_last_line_before_appending(tmp_path: Path) -> None:
    from meepo_core.builtin.jsonl_sink import JsonlSink
    from meepo_core.events import Batch
    from meepo_core.testing import make_context

    log = tmp_path / "audit.jsonl"
    first = RowEvent("s", "t", "write", 1, None, {"id": 1}, sequence=1)
    log.write_text(event_to_json(first) + "\n" + '{"name": "t_write", "sch')  # crash mid-line
    sink = JsonlSink(log)
    sink.open(make_context(tmp_path))
    second = RowEvent("s", "t", "write", 2, None, {"id": 2}, sequence=2)
    sink.apply(Batch((second,), 2))
    sink.close()
    assert [event_from_json(line).pk for line in log.read_text().splitlines()] == [1, 2]
