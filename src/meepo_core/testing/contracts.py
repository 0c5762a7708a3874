"""Contract suites that every sink and source must pass; subclass them in pytest.

Plugin tests and third-party authors use the same suites::

    class TestWebhookSink(SinkContract):
        sink_type = "webhook"

        def sink_options(self) -> dict[str, Any]:
            return {"url": self.server_url}

        def observable_state(self) -> Any:
            return sorted(self.received_state())

        def poison_batch(self) -> Batch | None:
            return Batch((self.contract_event("write", 99, {"id": 99, "name": "rejected"}),))
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ..context import PipelineContext
from ..dead_letters import FileDeadLetterStore
from ..errors import ConfigError
from ..events import UNCHANGED, Batch, RowEvent
from ..metrics import Metrics
from ..options import Options
from ..plugins import load_registry
from ..settings import PipelineSettings
from ..sink import Sink
from ..source import Source
from .contract_rows import CONTRACT_STAMP, contract_row


def make_context(
    tmp_path: Path, pipeline: str = "contract", settings: PipelineSettings | None = None
) -> PipelineContext:
    """A pipeline context whose dead letters go to ``tmp_path/dead.jsonl``, relative paths
    resolve against ``tmp_path``, and settings are ``settings`` (default: the defaults)."""
    return PipelineContext(
        pipeline=pipeline,
        metrics=Metrics(pipeline),
        dead_letters=FileDeadLetterStore(tmp_path / "dead.jsonl"),
        settings=settings or PipelineSettings(),
        base_dir=tmp_path,
    )


#: ``committed_at`` of every contract event.
def contract_events(schema: str = "meepo_contract", table: str = "items") -> list[Batch]:
    """Five transactions over ``schema.table`` (rows of :func:`contract_row`): three writes,
    an update of id 2 (name changes), a delete of id 3 and an update of id 1 twice in one
    transaction. Sequences grow by one per event; positions by one per batch."""
    seq = iter(range(1, 100))
    row = contract_row

    def event(action: Any, pk: int, before: Any, after: Any, position: int) -> RowEvent:
        return RowEvent(
            schema, table, action, pk, before, after, position, CONTRACT_STAMP, f"tx{position}",
            next(seq),
        )

    return [
        Batch(
            (
                event("write", 1, None, row(1, "one"), 1),
                event("write", 2, None, row(2, "two"), 1),
                event("write", 3, None, row(3, "three"), 1),
            ),
            1,
        ),
        Batch((event("update", 2, row(2, "two"), row(2, "deux"), 2),), 2),
        Batch((event("delete", 3, row(3, "three"), None, 3),), 3),
        Batch(
            (
                event("update", 1, row(1, "one"), row(1, "un"), 4),
                event("update", 1, row(1, "un"), row(1, "uno"), 4),
            ),
            4,
        ),
        Batch((), 5),
    ]


class SinkContract:
    """Subclass and set ``sink_type`` and implement :meth:`sink_options`,
    :meth:`observable_state` and :meth:`poison_batch`.

    ``observable_state`` returns the sink's observable end state (rows in a table, documents
    in an index, keys present...). Fixtures of the subclass may set up servers; ``self.tmp_path``
    is available in every method. Each test opens a fresh sink (built from
    :meth:`sink_options` through the registry) for every run over the batches, with a
    context from :func:`make_context`: relative paths resolve against ``tmp_path`` and dead
    letters go to ``tmp_path/dead.jsonl``.

    The tests: unknown options are errors naming the key; replaying every batch, or a
    suffix of them, leaves the same state; the state is durable when ``apply`` returns (the
    batches are applied in a forked child that SIGKILLs itself right after the last
    ``apply``); an event the sink can never apply goes to ``context.dead_letter`` and
    changes nothing; ``check`` reports no problem when the destination is reachable;
    delivered through the core, a batch with a schema change (a column added) and rows of
    the new shape apply, idempotently, whether the sink follows schema changes or not.
    """

    sink_type: str = ""
    schema = "meepo_contract"
    table = "items"
    #: Why this sink's state cannot outlive its process (an in-process sink such as
    #: ``memory``); the durability test is then skipped with this reason.
    not_durable_reason: str | None = None
    #: Seconds the forked child of the durability test may take.
    child_timeout = 120.0

    def sink_options(self) -> dict[str, Any]:
        raise NotImplementedError

    def observable_state(self) -> Any:
        raise NotImplementedError

    def poison_batch(self) -> Batch | None:
        """A batch of events this sink can never apply, each of which must reach the
        dead-letter store through ``context.dead_letter`` while ``apply`` returns normally
        (a mapping conflict, a constraint violation, a receiver's 4xx...). Return ``None``
        only when the sink accepts every event; the dead-letter test is then skipped.
        :meth:`contract_event` builds events on the contract table."""
        raise NotImplementedError(
            f"{type(self).__name__}.poison_batch: return a Batch of events the sink can never "
            "apply, or None if it accepts every event"
        )

    def prepare(self) -> None:
        """Called before the sink is opened (seed a cache, create a table...)."""

    def batches(self) -> list[Batch]:
        return contract_events(self.schema, self.table)

    def contract_event(
        self, action: Any, pk: Any, after: dict[str, Any] | None,
        before: dict[str, Any] | None = None, *, sequence: int = 100,
    ) -> RowEvent:
        """An event on the contract table, later than every contract batch (position 6,
        ``sequence`` default 100)."""
        return RowEvent(self.schema, self.table, action, pk, before, after, 6, CONTRACT_STAMP,
                        "tx6", sequence)

    def read_and_unchanged_batch(self) -> Batch:
        """For a sink's own tests of snapshot rows and unchanged values: a ``read`` of id 5
        (sequence 101), then an update of it (sequence 102) whose ``price`` the source did
        not send (:data:`~meepo_core.UNCHANGED`): the sink must keep ``Decimal("5.50")``."""
        return Batch((
            self.contract_event("read", 5, contract_row(5, "five"), sequence=101),
            self.contract_event("update", 5, {**contract_row(5, "cinq"), "price": UNCHANGED},
                                before={"id": 5}, sequence=102),
        ), 6)

    @pytest.fixture(autouse=True)
    def _contract_tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def build(self) -> Sink:
        registry = load_registry()
        cls = registry.lookup("sink", self.sink_type, "sink.type")
        options = Options({"type": self.sink_type, **self.sink_options()}, "sink", self.tmp_path)
        return cls.from_options(options)  # type: ignore[no-any-return]

    @contextmanager
    def opened(self, context: PipelineContext | None = None) -> Iterator[Sink]:
        sink = self.build()
        sink.open(context or make_context(self.tmp_path))
        try:
            yield sink
        finally:
            sink.close()

    def apply_all(self, batches: list[Batch]) -> None:
        with self.opened() as sink:
            for batch in batches:
                sink.apply(batch)

    def dead_letters(self) -> list[dict[str, Any]]:
        """The records in ``tmp_path/dead.jsonl`` (see
        :func:`meepo_core.dead_letters.dead_letter_record`)."""
        path = self.tmp_path / "dead.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def apply_in_a_killed_child(self, batches: list[Batch]) -> None:
        """Apply ``batches`` through a fresh sink in a forked child process that SIGKILLs
        itself right after the last ``apply`` returns: no ``close``, no flush at exit."""
        error_file = self.tmp_path / "durability-child-error.txt"
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                sink = self.build()
                sink.open(make_context(self.tmp_path))
                for batch in batches:
                    sink.apply(batch)
            except BaseException:
                error_file.write_text(traceback.format_exc(), encoding="utf-8")
            finally:
                os.kill(os.getpid(), signal.SIGKILL)
        deadline = time.monotonic() + self.child_timeout
        while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"applying the contract batches took over {self.child_timeout}s "
                            "in the child process")
            time.sleep(0.02)
        if error_file.exists():
            pytest.fail("apply failed in the child process:\n" + error_file.read_text())
        status = waited[1]
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status

    def test_unknown_option_names_the_key(self) -> None:
        registry = load_registry()
        cls = registry.lookup("sink", self.sink_type, "sink.type")
        options = Options(
            {"type": self.sink_type, **self.sink_options(), "no_such_option": 1},
            "s[0]",
            self.tmp_path,
        )
        with pytest.raises(ConfigError, match=r"s\[0\]\.no_such_option: unknown option"):
            cls.from_options(options)

    def test_replay_leaves_the_same_state(self) -> None:
        self.prepare()
        batches = self.batches()
        self.apply_all(batches)
        once = self.observable_state()
        self.apply_all(batches)
        assert self.observable_state() == once

    def test_crash_replay_of_a_suffix_leaves_the_same_state(self) -> None:
        self.prepare()
        batches = self.batches()
        self.apply_all(batches)
        once = self.observable_state()
        self.apply_all(batches[1:])  # resumed from an older checkpoint
        assert self.observable_state() == once

    def test_state_is_durable_when_apply_returns(self) -> None:
        """A sink that keeps its state in memory until ``close`` (or an exit handler) loses
        it when the process is killed: the state after a SIGKILL must be what a normal run
        over the same batches leaves."""
        if self.not_durable_reason is not None:
            pytest.skip(self.not_durable_reason)
        if not hasattr(os, "fork"):
            pytest.skip("needs os.fork")
        self.prepare()
        batches = self.batches()
        self.apply_in_a_killed_child(batches)
        killed = self.observable_state()
        self.apply_all(batches)  # a normal run: idempotent over a durable state
        assert killed == self.observable_state(), "the state was not durable when apply returned"

    def test_poison_events_go_to_the_dead_letter_store(self) -> None:
        poison = self.poison_batch()
        if poison is None:
            pytest.skip(f"the {self.sink_type} sink accepts every event (no poison batch)")
        assert poison.events, "poison_batch must hold at least one event"
        self.prepare()
        context = make_context(self.tmp_path)
        with self.opened(context) as sink:
            for batch in self.batches():
                sink.apply(batch)
            clean = self.observable_state()
            sink.apply(poison)  # must not raise: the pipeline moves on
        context.dead_letters.sync()
        assert self.observable_state() == clean, "a poison event changed the sink's state"
        expected = sorted((e.name, e.sequence) for e in poison.events)
        letters = self.dead_letters()
        assert sorted((r["event"]["name"], r["event"]["sequence"]) for r in letters) == expected
        assert all(r["error"] for r in letters), letters
        counted = sum(n for (_, kind), n in context.metrics.failures.items()
                      if kind == "dead_letter")
        assert counted == len(expected), "dead letters must go through context.dead_letter"

    def test_schema_change_then_rows_of_the_new_shape(self) -> None:
        """Through :class:`~meepo_core.delivery.Delivery`, as a pipeline delivers: a sink
        that declares ``follows_schema_changes`` gets the change (it must add the column,
        or otherwise make room for it) and the rows after it; a sink that does not never
        sees the change and gets the rows alone. Either way a replay changes nothing and
        nothing is a dead letter; a sink that follows schema changes shows the new rows."""
        from ..delivery import Delivery
        from .schema_contract import contract_schema_batches

        self.prepare()
        batches = self.batches()
        self.apply_all(batches)
        without = self.observable_state()
        evolved = contract_schema_batches(self.schema, self.table)
        seen: list[Batch] = []
        for replay in (False, True):
            sink = self.build()
            if not replay:
                sink.apply = _recording(sink.apply, seen)  # type: ignore[method-assign,assignment]
            label = f"sinks[0] {self.sink_type}"
            with Delivery([(label, sink)], make_context(self.tmp_path)) as delivery:
                for batch in evolved:
                    delivery.apply(batch)
            if not replay:
                evolved_state = self.observable_state()
        if without is not None and type(sink).follows_schema_changes:
            # a sink that keeps the table's shape shows the new rows (an invalidating or
            # stateless sink may show nothing of them, its observable state None)
            assert evolved_state != without, "the rows after the schema change did not show"
        assert self.observable_state() == evolved_state, (
            "replaying the schema change changed the state")
        assert self.dead_letters() == []
        changes = [change for batch in seen for change in batch.schema_changes]
        assert len(changes) == (1 if type(sink).follows_schema_changes else 0)

    def test_check_reports_no_problem_when_reachable(self) -> None:
        assert self.build().check() == []


class SourceContract:
    """Subclass and implement :meth:`make_source` and :meth:`produce`.

    ``produce(n)`` commits ``n`` new rows, one transaction each, and returns their pks in
    commit order; the source must deliver them as ``write`` events.
    """

    def make_source(self) -> Source:
        raise NotImplementedError

    def produce(self, count: int) -> list[Any]:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _contract_tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def drain(self, start: Any) -> tuple[list[RowEvent], Any]:
        """Stream with ``once`` from ``start``; returns the events and the last position."""
        return drain_once(self.make_source(), start, self.tmp_path)

    def test_delivers_committed_rows_in_order_and_resumes_exactly(self) -> None:
        _, start = self.drain(None)
        first = self.produce(3)
        events, position = self.drain(start)
        assert [(e.action, e.pk) for e in events][-3:] == [("write", pk) for pk in first]
        assert position != start
        second = self.produce(2)
        resumed, _ = self.drain(position)
        assert [(e.action, e.pk) for e in resumed] == [("write", pk) for pk in second]

    def test_once_ends_when_caught_up(self) -> None:
        _, position = self.drain(None)
        events, _ = self.drain(position)
        assert events == []

    def test_stops_promptly_when_asked(self) -> None:
        _, position = self.drain(None)
        source = self.make_source()
        context = make_context(self.tmp_path)
        threading.Timer(0.5, context.stopping.set).start()
        began = time.monotonic()
        try:
            for _ in source.stream(position, context, once=False):
                pass
        finally:
            source.close()
        assert time.monotonic() - began < 5


def drain_once(source: Source, start: Any, tmp_path: Path) -> tuple[list[RowEvent], Any]:
    """Stream ``source`` with ``once`` from ``start``, acknowledging each position as the
    runner does after a checkpoint, then close it; the events and the last position."""
    events: list[RowEvent] = []
    position = start
    try:
        for batch in source.stream(start, make_context(tmp_path), once=True):
            events.extend(batch.events)
            if batch.position is not None:
                position = batch.position
                source.acknowledge(position)
    finally:
        source.close()
    return events, position


def _recording(apply: Callable[[Batch], None], seen: list[Batch]) -> Callable[[Batch], None]:
    """``apply`` that first notes each batch it is given in ``seen``."""

    def recorded(batch: Batch) -> None:
        seen.append(batch)
        apply(batch)

    return recorded
