"""Running transforms over batches: a chain per place (the pipeline, each sink), and the
plan that gives every sink its own batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..errors import MeepoError, describe_error
from ..events import Batch, RowEvent
from ..schema_changes import SchemaChange
from .base import EventFunction, Transform
from .compiled import TableRun, compilable, compile_run
from .early_drops import DroppedColumns, columns_dropped_early

if TYPE_CHECKING:
    from ..context import PipelineContext

#: What to do with an event a transform raised on: record it in the dead-letter store and
#: go on, or stop the pipeline (the checkpoint stays before the batch).
OnError = Literal["dead_letter", "stop"]
ON_ERROR: tuple[OnError, ...] = ("dead_letter", "stop")

#: ``report(event, transform_label, error)``: where a chain sends the events its transforms
#: raised on (the dead-letter store in a run, stderr in ``meepo transform``).
ErrorReport = Callable[[RowEvent, str, str], None]
#: ``count(transform_label, events)``: where a chain counts the events its transforms
#: dropped (the pipeline's metrics in a run).
DropCount = Callable[[str, int], None]


class TransformError(MeepoError):
    """A transform with ``on_error = "stop"`` raised on an event (exit 1)."""


@dataclass
class Step:
    """One configured transform, with its functions compiled per table."""

    transform: Transform
    on_error: OnError = "dead_letter"
    _compiled: dict[str, dict[str, EventFunction | None]] = field(
        default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return self.transform.label

    def function(self, schema: str, table: str) -> EventFunction | None:
        tables = self._compiled.get(schema)
        if tables is None:
            tables = self._compiled[schema] = {}
        if table not in tables:
            tables[table] = self.compile(schema, table)
        return tables[table]

    def compile(self, schema: str, table: str) -> EventFunction | None:
        return self.transform.for_table(schema, table)

    def run(self, events: Sequence[RowEvent], report: ErrorReport,
            count: DropCount | None = None) -> list[RowEvent]:
        """The step's output for ``events``, in order. An event the transform raises on
        is reported (or, with ``on_error = "stop"``, a :class:`TransformError` raised);
        the events it drops are counted with ``count``."""
        out: list[RowEvent] = []
        append, extend = out.append, out.extend
        # consecutive events mostly share their table (and its name objects): look the
        # function up again only when the names are other objects
        schema = table = None
        function: EventFunction | None = None
        dropped = 0
        for event in events:
            if event.table is not table or event.schema is not schema:
                schema, table = event.schema, event.table
                function = self.function(schema, table)
            if function is None:
                append(event)
                continue
            try:
                result = function(event)
                if result is None:
                    dropped += 1
                    continue
                if result.__class__ is RowEvent:
                    append(result)
                elif isinstance(result, list) and all(
                        isinstance(item, RowEvent) for item in result):
                    extend(result)
                    dropped += not result
                else:
                    raise TypeError(f"returned {type(result).__name__}, not a RowEvent, "
                                    "None or a list of RowEvents")
            except Exception as exc:
                self._failed(event, exc, report)
        if dropped and count is not None:
            count(self.label, dropped)
        return out

    def _failed(self, event: RowEvent, exc: Exception, report: ErrorReport) -> None:
        error = describe_error(exc)
        failing = self.failing(event)
        if failing.on_error == "stop":
            raise TransformError(
                f"{failing.label}: failed on event {event.name} pk={event.pk!r}: {error}; "
                'stopped (on_error = "stop") without checkpointing this batch'
            ) from exc
        report(event, failing.label, error)

    def failing(self, event: RowEvent) -> Step:
        """The step to blame for an exception raised on ``event``."""
        return self


@dataclass
class CompiledSteps(Step):
    """Consecutive compilable steps (see :func:`compiled.compilable`) run as one generated
    function per table (:func:`compiled.compile_run`): one copy of each image, one event,
    no call per transform or per event. An event that raises is run again through the
    steps one by one, which reports it under the transform that raises (transforms are
    deterministic); that costs nothing while nothing fails."""

    parts: list[Step] = field(default_factory=list)
    _runs: dict[tuple[str, str, bool], TableRun] = field(default_factory=dict, repr=False)

    def run(self, events: Sequence[RowEvent], report: ErrorReport,
            count: DropCount | None = None, in_place: bool = False) -> list[RowEvent]:
        """:meth:`Step.run`; with ``in_place`` the events kept are the incoming ones with
        their fields changed, not copies: only for events the caller owns and nothing
        else holds (see :meth:`TransformChain.run`)."""
        out: list[RowEvent] = []
        drops = [0] * len(self.parts)
        runs = self._runs
        parts = self.parts

        def slow(event: RowEvent) -> None:
            one: Sequence[RowEvent] = [event]
            for part in parts:
                one = part.run(one, report, count)
            out.extend(one)

        index, end = 0, len(events)
        while index < end:
            event = events[index]
            schema, table = event.schema, event.table
            function = runs.get((schema, table, in_place))
            if function is None:
                function = runs[(schema, table, in_place)] = compile_run(
                    [part.transform for part in parts], schema, table, in_place)
            index = function(events, index, out, schema, table, drops, slow)
        if count is not None:
            for part, dropped in zip(parts, drops, strict=True):
                if dropped:
                    count(part.label, dropped)
        return out


def fuse(steps: list[Step]) -> list[Step]:
    """``steps`` with each run of consecutive compilable steps (one or more) made one
    :class:`CompiledSteps`."""
    fused: list[Step] = []
    run: list[Step] = []

    def flush() -> None:
        if run:
            fused.append(CompiledSteps(run[0].transform, parts=list(run)))
        run.clear()

    for step in steps:
        if compilable(step.transform):
            run.append(step)
        else:
            flush()
            fused.append(step)
    flush()
    return fused


@dataclass
class TransformChain:
    """Transforms applied one after the other; an empty chain is never built."""

    steps: list[Step]

    def __post_init__(self) -> None:
        self._running = fuse(self.steps)

    def open(self, context: PipelineContext) -> None:
        for step in self.steps:
            step.transform.open(context)

    def run(self, events: Sequence[RowEvent], report: ErrorReport,
            count: DropCount | None = None, fresh: bool = False) -> Sequence[RowEvent]:
        """The chain's output for ``events``. ``fresh``: the events were made for this
        call and nothing else holds them (a source's, see
        :attr:`~meepo_core.source.Source.yields_fresh_events`), so a compiled first step
        may change them in place rather than copy them. Only the first step: what a later
        step receives came from a step before it, and a user's step may keep what it
        returns."""
        for index, step in enumerate(self._running):
            if index == 0 and fresh and isinstance(step, CompiledSteps):
                events = step.run(events, report, count, in_place=True)
            else:
                events = step.run(events, report, count)
        return events

    @property
    def transforms(self) -> list[Transform]:
        return [step.transform for step in self.steps]


@dataclass
class PipelineTransforms:
    """A pipeline's transforms: ``pipeline`` for every sink, then each sink's own chain
    (keyed by the sink's label, ``"sinks[1] kafka"``)."""

    pipeline: TransformChain | None = None
    sinks: dict[str, TransformChain] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.pipeline is not None or bool(self.sinks)

    def dropped_early(self) -> DroppedColumns | None:
        """The columns the pipeline's chain drops before any step reads them (see
        :mod:`.early_drops`); None when there are none to tell the source."""
        return None if self.pipeline is None else columns_dropped_early(
            self.pipeline.transforms)

    def chains(self) -> list[TransformChain]:
        return [c for c in (self.pipeline, *self.sinks.values()) if c is not None]

    def open(self, context: PipelineContext) -> None:
        for chain in self.chains():
            chain.open(context)

    def batches(
        self, batch: Batch, labels: Sequence[str], report: ErrorReport,
        count: DropCount | None = None, fresh: bool = False,
    ) -> dict[str, Batch]:
        """What each sink (by label) receives for ``batch``. Every batch keeps the source
        position, even when its transforms dropped every event: the checkpoint advances
        past dropped events, which are counted with ``count``. Schema changes keep their
        place among the rows that remain (transforms shape row events only). ``fresh``:
        nothing else holds the batch's events, the pipeline's chain may change them (see
        :meth:`TransformChain.run`)."""
        if batch.schema_changes:
            return self._batches_around_changes(batch, labels, report, count, fresh)
        shared: Sequence[RowEvent] = batch.events
        if self.pipeline is not None:
            shared = self.pipeline.run(shared, report, count, fresh)
        common = Batch(tuple(shared), batch.position) if self.pipeline is not None else batch
        found: dict[str, Batch] = {}
        for label in labels:
            chain = self.sinks.get(label)
            if chain is None:
                found[label] = common
            else:
                found[label] = Batch(tuple(chain.run(shared, report, count)),
                                     batch.position)
        return found

    def _batches_around_changes(
        self, batch: Batch, labels: Sequence[str], report: ErrorReport,
        count: DropCount | None, fresh: bool,
    ) -> dict[str, Batch]:
        """:meth:`batches` for a batch with schema changes: each run of rows between
        them transformed on its own, each change placed after what remains before it."""
        parts: list[Sequence[RowEvent] | SchemaChange] = []
        for piece in batch.in_order():
            if isinstance(piece, SchemaChange) or self.pipeline is None:
                parts.append(piece)
            else:
                parts.append(self.pipeline.run(piece, report, count, fresh))
        found: dict[str, Batch] = {}
        for label in labels:
            chain = self.sinks.get(label)
            events: list[RowEvent] = []
            changes: list[tuple[int, SchemaChange]] = []
            for part in parts:
                if isinstance(part, SchemaChange):
                    changes.append((len(events), part))
                else:
                    events.extend(chain.run(part, report, count) if chain is not None
                                  else part)
            found[label] = Batch(tuple(events), batch.position, (), tuple(changes))
        return found

