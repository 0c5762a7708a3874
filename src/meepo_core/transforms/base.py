"""The contract every transform type implements, and the helper transforms build events
with."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeAlias

from ..events import Row, RowEvent
from ..options import Options, OptionSpec

if TYPE_CHECKING:
    from ..context import PipelineContext

#: What a transform returns for one event: the event (changed or not), ``None`` (dropped),
#: or a list of events (zero or more, in the order the sinks get them).
TransformResult: TypeAlias = "RowEvent | list[RowEvent] | None"
#: A transform compiled for one table: one event of that table in, a result out.
EventFunction: TypeAlias = "Callable[[RowEvent], TransformResult]"


class Transform(abc.ABC):
    """Changes, drops or multiplies events between the source and the sinks.

    Contract (checked by :class:`meepo_core.testing.TransformContract`):

    * ``apply`` takes one event and returns it (changed or not: events are frozen, so a
      change is a new event, see :func:`derive`), ``None`` to drop it, or a list of zero
      or more events. It never holds events back and never reorders them: the runner
      checkpoints past a dropped event like past a delivered one.
    * The same event gives the same result every time (delivery is at-least-once: a
      replayed batch goes through the transforms again). ``apply`` must not change the
      event's ``before``/``after`` mappings in place; build new ones.
    * An exception raised by ``apply`` sends the event to the dead-letter store under the
      transform's label with the error (or stops the pipeline, with ``on_error = "stop"``);
      raise :class:`~meepo_core.errors.ConfigError` from ``from_options`` for bad options.

    Speed: ``for_table(schema, table)`` is called once per table the transform meets and
    returns the function applied to that table's events, so whatever depends only on the
    table (which columns to hash, a route's name) is worked out once. Returning ``None``
    there means "this table's events pass unchanged", which costs nothing per event. The
    default returns :meth:`apply`.
    """

    #: ``"transforms[0] filter"`` or ``"sinks[1] kafka transforms[0] route"``; set by the
    #: core when it builds the transform, for logs and dead letters.
    label: str = ""
    #: Where the transform's table is in the config (``tool.meepo.pipelines.orders.
    #: transforms[0]``); set by the core, for ``meepo check``'s warnings.
    key_path: str = ""
    #: The type's options, declared once (see :class:`~meepo_core.options.OptionSpec`):
    #: ``from_options`` reads them through these specs, and the docs tables and
    #: ``meepo plugins --options TYPE`` are generated from them. Empty: undeclared.
    OPTIONS: ClassVar[tuple[OptionSpec, ...]] = ()

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Options) -> Self:
        """Build from config, validating every option (no I/O); end with
        ``options.done()``. ``type`` and ``on_error`` are read by the core."""

    def open(self, context: PipelineContext) -> None:  # noqa: B027 - optional hook
        """Called once before the first event (the pipeline's context)."""

    def for_table(self, schema: str, table: str) -> EventFunction | None:
        """The function for the events of ``schema.table``; ``None`` when they pass
        unchanged."""
        return self.apply

    @abc.abstractmethod
    def apply(self, event: RowEvent) -> TransformResult:
        """One event in, the event, ``None`` or a list of events out."""

    def columns(self) -> Sequence[tuple[str, str, str]]:
        """``(option key, table pattern, column pattern)`` of each column the options name,
        such as ``("columns[0]", "shop.users", "email")``: ``meepo check`` warns about
        those that no followed table has. Empty when the transform names none."""
        return ()


#: Edits a copy of a row image in place (see :class:`ImageTransform`).
RowEditor: TypeAlias = "Callable[[dict[str, Any]], None]"


class ImageTransform(Transform):
    """A transform that only edits the row images (``before`` and ``after``), the same way
    for both: ``mask``, ``hash``, ``drop_columns``, ``keep_columns``. It provides
    :meth:`row_editor`; the chain runs consecutive image transforms on one copy of each
    image and builds one event for them all, instead of one per transform."""

    @abc.abstractmethod
    def row_editor(self, schema: str, table: str) -> RowEditor | None:
        """The in-place edit of a copy of an image of ``schema.table``; None when the
        table's events pass unchanged."""

    def for_table(self, schema: str, table: str) -> EventFunction | None:
        edit = self.row_editor(schema, table)
        return None if edit is None else edit_images([edit])

    def apply(self, event: RowEvent) -> TransformResult:
        function = self.for_table(event.schema, event.table)
        return event if function is None else function(event)


class TableRoute(abc.ABC):
    """A transform that may set destinations that depend only on the table and action
    (``route`` with a ``to`` template): the chain then sets them in the event built by the
    image transforms before it."""

    @property
    @abc.abstractmethod
    def by_table(self) -> bool:
        """Whether the destinations depend on the table and action only."""

    @abc.abstractmethod
    def routes(self, schema: str, table: str) -> bool:
        """Whether the events of ``schema.table`` get a destination."""

    @abc.abstractmethod
    def table_destinations(self, schema: str, table: str) -> Mapping[str, str]:
        """The destination of ``schema.table``'s events, by action."""


def edit_images(
    edits: Sequence[RowEditor], destinations: Mapping[str, str] | None = None
) -> EventFunction:
    """An event function that copies the event's images, runs ``edits`` on the copies in
    order and builds one event; with ``destinations`` (by action, a ``route``'s names for
    the table) that event also gets its destination."""
    def edited(event: RowEvent) -> TransformResult:
        before, after = event.before, event.after
        new_before = dict(before) if before else before
        new_after = dict(after) if after else after
        for edit in edits:
            if new_before:
                edit(new_before)  # type: ignore[arg-type]
            if new_after:
                edit(new_after)  # type: ignore[arg-type]
        return RowEvent.trusted(
            event.schema, event.table, event.action, event.pk, new_before, new_after,
            event.position, event.committed_at, event.txid, event.sequence, event.pk_columns,
            event.destination if destinations is None else destinations[event.action],
            event.definition, event.snapshot,
        )
    return edited


def derive(event: RowEvent, **changes: Any) -> RowEvent:
    """``event`` with the fields in ``changes`` replaced (``before``, ``after``, ``table``,
    ``destination``...), without re-validating the unchanged fields: several times cheaper
    than :func:`dataclasses.replace`, which matters on a per-event path."""
    get = changes.get
    return RowEvent.trusted(
        get("schema", event.schema), get("table", event.table), get("action", event.action),
        get("pk", event.pk), get("before", event.before), get("after", event.after),
        get("position", event.position), get("committed_at", event.committed_at),
        get("txid", event.txid), get("sequence", event.sequence),
        get("pk_columns", event.pk_columns), get("destination", event.destination),
        get("definition", event.definition), get("snapshot", event.snapshot),
    )


def with_destination(event: RowEvent, destination: str | None) -> RowEvent:
    """``event`` with a new ``destination`` (what ``route`` sets), spelled out for speed."""
    return RowEvent.trusted(
        event.schema, event.table, event.action, event.pk, event.before, event.after,
        event.position, event.committed_at, event.txid, event.sequence, event.pk_columns,
        destination, event.definition, event.snapshot,
    )


def with_images(event: RowEvent, before: Row | None, after: Row | None) -> RowEvent:
    """``event`` with new ``before`` and ``after`` images: the common case of column
    transforms, spelled out for speed."""
    return RowEvent.trusted(
        event.schema, event.table, event.action, event.pk, before, after, event.position,
        event.committed_at, event.txid, event.sequence, event.pk_columns, event.destination,
        event.definition, event.snapshot,
    )
