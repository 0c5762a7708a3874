"""The event model: one immutable :class:`RowEvent` per changed row, grouped into batches."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from .definitions import TableDefinition
    from .schema_changes import PlacedSchemaChange, SchemaChange

#: ``write``, ``update`` and ``delete`` are changes; ``read`` is a row copied by a snapshot
#: (its current state: ``after`` is the row, ``before`` is None), which sinks apply as an
#: upsert.
Action: TypeAlias = Literal["write", "update", "delete", "read"]
ACTIONS: tuple[Action, ...] = ("write", "update", "delete", "read")

#: A primary key: a scalar, or a tuple of values in key order for a composite key.
PrimaryKey: TypeAlias = Any
#: A row image: column name to value.
Row: TypeAlias = Mapping[str, Any]
#: A source-owned position that serialises to JSON (binlog file+pos, GTID set, outbox id...).
Position: TypeAlias = Any


class _Unchanged:
    """The type of :data:`UNCHANGED`; one instance, equal only to itself."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __reduce__(self) -> str:
        return "UNCHANGED"


#: A column value the source did not send because it did not change (PostgreSQL's unchanged
#: TOAST values in an update's ``after``). Sinks must keep the value they hold for that
#: column: never write ``UNCHANGED`` as a value, never turn it into NULL.
UNCHANGED = _Unchanged()


class SnapshotPlace(enum.IntFlag):
    """Where a snapshot ``read`` event sits in the snapshot that copied it
    (:attr:`RowEvent.snapshot`), set by the core's snapshot coordinator as it delivers
    each chunk (see :mod:`meepo_core.snapshots`); sinks that announce the start and end of
    a snapshot (the Debezium format's ``source.snapshot``) read it, others ignore it.

    ``INITIAL``: the pipeline's initial snapshot (``snapshot = "initial"``, first run), not
    a later request. ``FIRST_IN_TABLE``/``LAST_IN_TABLE``: the first/last row delivered
    of its table. ``LAST``: the last row the snapshot (one request, all its tables)
    delivers. ``FIRST``: the first row of the snapshot's first table, so none when that
    table has no rows (Debezium's rule for its ``first`` mark, which this serves; the
    first row delivered is the first ``FIRST_IN_TABLE``). No flag but ``INITIAL`` (or
    none at all) marks a row in the middle. Rows the stream changed while their chunk was
    copied arrive as changes, not reads: the flags go to the delivered rows around them,
    except that when every row of a table's last chunk changed, no read of the table
    carries ``LAST_IN_TABLE`` (nor ``LAST``)."""

    INITIAL = 1
    FIRST = 2
    LAST = 4
    FIRST_IN_TABLE = 8
    LAST_IN_TABLE = 16


def qualified_name(schema: str, table: str) -> str:
    """``"schema.table"``, or just the table when the source has no schema: how every part
    of meepo names a table (config keys, metrics, logs)."""
    return f"{schema}.{table}" if schema else table


@dataclass(frozen=True, slots=True)
class RowEvent:
    """One changed row, as the source committed it.

    ``before`` is ``None`` for writes and ``after`` is ``None`` for deletes. ``position``
    is where the source read the event (e.g. the binlog event's file and offset); resumable
    positions are carried by :class:`Batch`, at transaction ends. ``sequence``, where
    the source provides one, is an int64 that grows strictly with commit order across the
    whole source; sinks use it for external versioning. ``committed_at`` is UTC-aware.
    ``pk_columns`` names the key columns in key order, where the source knows them.
    ``destination``, set by a ``route`` transform, is the name the sinks write the event to
    instead of the one they derive from its table (a Kafka topic, an index, a SQL table).
    ``definition`` is the table's column definition where the source knows it (see
    :mod:`meepo_core.definitions`); it takes no part in equality and is not serialised.
    ``snapshot``, on ``read`` events the core's snapshots deliver, says where the row sits
    in its snapshot (:class:`SnapshotPlace`); None on changes and on reads a source made
    itself. It takes no part in equality.
    """

    schema: str
    table: str
    action: Action
    pk: PrimaryKey
    before: Row | None = None
    after: Row | None = None
    position: Position = None
    committed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    txid: str | None = None
    sequence: int | None = None
    pk_columns: tuple[str, ...] | None = None
    destination: str | None = None
    definition: TableDefinition | None = field(default=None, compare=False, repr=False)
    snapshot: SnapshotPlace | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if self.committed_at.tzinfo is None:
            raise ValueError("committed_at must be timezone-aware (UTC)")

    @classmethod
    def trusted(
        cls, schema: str, table: str, action: Action, pk: PrimaryKey, before: Row | None,
        after: Row | None, position: Position, committed_at: datetime, txid: str | None,
        sequence: int | None, pk_columns: tuple[str, ...] | None,
        destination: str | None = None,
        definition: TableDefinition | None = None,
        snapshot: SnapshotPlace | None = None,
    ) -> RowEvent:
        """The event ``RowEvent(...)`` builds from the same arguments, for sources that
        already guarantee what ``__post_init__`` checks (``action`` is one of ``ACTIONS``,
        ``committed_at`` is timezone-aware). Several times cheaper: the frozen constructor
        sets every field through ``object.__setattr__`` and then validates, this one stores
        them as plain slots (see :class:`UnfrozenRowEvent`)."""
        # Filled as an unfrozen object with the same slots, then made a RowEvent: plain
        # slot stores and one class assignment cost less than half of fourteen descriptor
        # calls.
        event: Any = UnfrozenRowEvent()
        event.schema = schema
        event.table = table
        event.action = action
        event.pk = pk
        event.before = before
        event.after = after
        event.position = position
        event.committed_at = committed_at
        event.txid = txid
        event.sequence = sequence
        event.pk_columns = pk_columns
        event.destination = destination
        event.definition = definition
        event.snapshot = snapshot
        event.__class__ = cls
        built: RowEvent = event
        return built

    @property
    def name(self) -> str:
        """The original meepo's event name, ``"{table}_{action}"``."""
        return f"{self.table}_{self.action}"

    @property
    def qualified_table(self) -> str:
        """``"schema.table"``, or just the table when the source has no schema."""
        return qualified_name(self.schema, self.table)

    @property
    def row(self) -> Row:
        """The newest image: ``after``, or ``before`` for a delete."""
        image = self.after if self.after is not None else self.before
        return image if image is not None else {}


class UnfrozenRowEvent:
    """RowEvent's slots without its frozen ``__setattr__``: :meth:`RowEvent.trusted` fills
    one, then assigns its ``__class__`` (Python allows that between classes of the same
    slots; subclasses of RowEvent that add slots cannot use ``trusted``)."""

    __slots__ = RowEvent.__slots__


@dataclass(frozen=True, slots=True)
class Watermark:
    """A snapshot watermark that a source met in its change stream (see
    :mod:`meepo_core.snapshots`): ``mark`` is what the core wrote with
    :meth:`~meepo_core.source.Source.write_watermark`, ``index`` the number of the batch's
    events that come before it. ``sequence`` and ``committed_at`` are those the source would
    give a row event at that point of the stream (snapshot rows delivered there get them)."""

    index: int
    mark: str
    sequence: int | None = None
    committed_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.committed_at is not None and self.committed_at.tzinfo is None:
            raise ValueError("committed_at must be timezone-aware (UTC)")


@dataclass(frozen=True, slots=True)
class Batch:
    """Events in commit order, handed to every sink at once.

    ``position`` is the resumable position after the last event, set only when the batch
    ends on a transaction boundary; a huge transaction streams as several batches of which
    only the last carries a position, so a checkpoint never lands mid-transaction. A batch
    may be empty and still carry a position (e.g. transactions on filtered-out tables).
    ``watermarks`` are the snapshot watermarks met among the events, in stream order; the
    runner removes them before sinks see the batch. ``schema_changes`` are the schema
    changes among the events, in stream order, each after as many row events as its index
    says (see :mod:`meepo_core.schema_changes`); sinks see them only when they follow them.
    """

    events: tuple[RowEvent, ...]
    position: Position = None
    watermarks: tuple[Watermark, ...] = ()
    schema_changes: tuple[PlacedSchemaChange, ...] = ()

    def in_order(self) -> Iterator[tuple[RowEvent, ...] | SchemaChange]:
        """The batch in commit order: runs of row events (non-empty tuples) and the schema
        changes between them."""
        start = 0
        for index, change in self.schema_changes:
            if index > start:
                yield self.events[start:index]
                start = index
            yield change
        if start < len(self.events):
            yield self.events[start:]

    def without_schema_changes(self) -> Batch:
        """This batch for a sink that does not follow schema changes."""
        return Batch(self.events, self.position, self.watermarks)

    def __len__(self) -> int:
        return len(self.events)
