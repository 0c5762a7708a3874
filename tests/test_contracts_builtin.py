"""The built-in sinks and sources pass the same contract suites as plugins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meepo_core.builtin.jsonl_source import JsonlSource
from meepo_core.builtin.memory import channel
from meepo_core.events import Batch, RowEvent
from meepo_core.serialization import event_from_json, event_to_json
from meepo_core.source import Source
from meepo_core.testing import SinkContract, SourceContract, contract_row


def unencodable_batch(contract: SinkContract) -> Batch:
    """An event with a value JSON cannot carry (a complex number)."""
    return Batch((contract.contract_event(
        "write", 99, {**contract_row(99, "poison"), "price": complex(1, 2)}),), 6)


class TestJsonlSinkContract(SinkContract):
    sink_type = "jsonl"

    def sink_options(self) -> dict[str, Any]:
        return {"path": "audit.jsonl"}

    def observable_state(self) -> Any:
        return (self.tmp_path / "audit.jsonl").read_text().splitlines()

    def poison_batch(self) -> Batch:
        return unencodable_batch(self)

    def test_snapshot_rows_and_unchanged_values_are_logged_as_they_are(self) -> None:
        batch = self.read_and_unchanged_batch()
        self.apply_all([batch])
        lines = self.observable_state()
        assert [event_from_json(line) for line in lines] == list(batch.events)
        assert '"price":{"$unchanged":true}' in lines[1]


class TestPrintSinkContract(SinkContract):
    """The observable state of ``print`` is the set of distinct lines on stdout (a replay
    prints again; readers of the output de-duplicate)."""

    sink_type = "print"
    printed: list[str]

    @pytest.fixture(autouse=True)
    def _stdout(self, capfd: pytest.CaptureFixture[str]) -> None:
        self.capfd = capfd  # file-descriptor capture also sees a forked child's output
        self.printed = []

    def sink_options(self) -> dict[str, Any]:
        return {}

    def observable_state(self) -> Any:
        self.printed += self.capfd.readouterr().out.splitlines()
        return sorted(set(self.printed))

    def poison_batch(self) -> None:
        return None  # a line is printed for any event

    def test_snapshot_rows_print_as_table_read_pk(self) -> None:
        self.apply_all([self.read_and_unchanged_batch()])
        assert self.observable_state() == ["items_read 5", "items_update 5"]

    def test_json_format_dead_letters_what_json_cannot_carry(self) -> None:
        from meepo_core.builtin.print_sink import PrintSink
        from meepo_core.testing import make_context

        sink = PrintSink("json")
        context = make_context(self.tmp_path)
        sink.open(context)
        sink.apply(unencodable_batch(self))
        context.dead_letters.sync()
        assert self.observable_state() == []
        assert [r["event"]["pk"] for r in self.dead_letters()] == ["99"]
        batch = self.read_and_unchanged_batch()
        sink.apply(batch)
        printed = [event_from_json(line) for line in self.observable_state()]
        assert sorted(printed, key=lambda e: e.sequence or 0) == list(batch.events)


class TestMemorySinkContract(SinkContract):
    sink_type = "memory"
    not_durable_reason = "the memory sink keeps events in its process by design"

    def sink_options(self) -> dict[str, Any]:
        return {"name": "contract"}

    def observable_state(self) -> Any:
        return sorted({event_to_json(e) for e in channel("contract").events})

    def poison_batch(self) -> None:
        return None  # keeps any event object

    def test_snapshot_rows_and_unchanged_values_are_kept_as_they_are(self) -> None:
        batch = self.read_and_unchanged_batch()
        self.apply_all([batch])
        assert channel("contract").events == list(batch.events)


class TestNullSinkContract(SinkContract):
    sink_type = "null"

    def sink_options(self) -> dict[str, Any]:
        return {}

    def observable_state(self) -> Any:
        return None  # keeps nothing

    def poison_batch(self) -> None:
        return None  # discards any event


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


def test_jsonl_sink_skips_only_exact_replays_whatever_the_sequence_order(tmp_path: Path) -> None:
    """Sequences that do not grow across the log (a multi-partition source, the rows of one
    snapshot chunk) are all written; a replay of the same events after a crash is not."""
    from meepo_core.builtin.jsonl_sink import JsonlSink
    from meepo_core.events import Batch
    from meepo_core.testing import make_context

    log = tmp_path / "audit.jsonl"
    partition_a = [RowEvent("s", "t", "write", pk, None, {"id": pk}, sequence=100 + pk)
                   for pk in (1, 2)]
    partition_b = [RowEvent("s", "t", "update", pk, {"id": pk}, {"id": pk}, sequence=pk)
                   for pk in (7, 8)]
    chunk = [RowEvent("s", "t", "read", pk, None, {"id": pk}, sequence=500) for pk in (3, 4)]
    batches = [Batch(tuple(partition_a), 1), Batch(tuple(partition_b), 2),
               Batch(tuple(chunk), 3)]
    for _ in range(2):  # the second run replays everything, as after a crash
        sink = JsonlSink(log)
        sink.open(make_context(tmp_path))
        for batch in batches:
            sink.apply(batch)
        sink.close()
    written = [(e.action, e.pk, e.sequence) for e in map(event_from_json,
                                                           log.read_text().splitlines())]
    assert written == [("write", 1, 101), ("write", 2, 102), ("update", 7, 7),
                       ("update", 8, 8), ("read", 3, 500), ("read", 4, 500)]


def test_jsonl_sink_dead_letters_a_value_nested_beyond_any_json_encoder(tmp_path: Path) -> None:
    """A list nested 20,000 levels (a Python value from an embedding application, deeper
    than json.dumps can write): that event is a dead letter (recorded with a shortened
    repr), the others are written, and nothing raises."""
    from meepo_core.builtin.jsonl_sink import JsonlSink
    from meepo_core.testing import make_context

    deep: list[Any] = []
    for _ in range(20_000):
        deep = [deep]
    log = tmp_path / "audit.jsonl"
    sink = JsonlSink(log)
    context = make_context(tmp_path)
    sink.open(context)
    events = tuple(RowEvent("s", "t", "write", pk, None, {"id": pk, "doc": doc}, sequence=pk)
                   for pk, doc in ((1, [1]), (2, deep), (3, [3])))
    sink.apply(Batch(events, 3))
    sink.close()
    context.dead_letters.sync()
    assert [event_from_json(line).pk for line in log.read_text().splitlines()] == [1, 3]
    [letter] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert letter["event"]["pk"] == "2"
    assert letter["event"]["after"] == "{'doc': [[[[[[...]]]]]], 'id': 2}"
    assert letter["error"].startswith("cannot encode: maximum recursion depth exceeded")
