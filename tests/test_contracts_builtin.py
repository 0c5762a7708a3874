"""The built-in sinks and sources pass the same contract suites as plugins."""

from __future__ import annotations

from typing import Any

from meepo_core.builtin.jsonl import JsonlSource
from meepo_core.events import RowEvent
from meepo_core.serialization import event_to_json
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
