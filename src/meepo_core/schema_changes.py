"""Schema changes as events: a table created, altered, renamed, truncated or dropped, in
commit order with the row events.

Shape, and why: a :class:`SchemaChange` is not a :class:`~meepo_core.events.RowEvent`
and does not travel in :attr:`Batch.events <meepo_core.events.Batch.events>`. It rides in
:attr:`Batch.schema_changes <meepo_core.events.Batch.schema_changes>` as ``(index,
change)`` pairs, ``index`` being the number of the batch's row events that come before it
(the shape of :class:`~meepo_core.events.Watermark`). So

* row events and every sink's loop over ``batch.events`` stay exactly as they were: no new
  action to skip, no type test per row, no new field on the row event;
* the core hands a batch's schema changes only to sinks that declare
  :attr:`Sink.follows_schema_changes <meepo_core.sink.Sink.follows_schema_changes>`; for
  the others it drops them, a test of one empty tuple per batch when there are none;
* a sink that follows them walks :meth:`Batch.in_order
  <meepo_core.events.Batch.in_order>`: runs of row events with the changes between them.

A change states the table's definition after it (``after``) and, where the source knows it,
before it (``before``). Sinks apply a change by making their copy match ``after``, using
``before`` only to recognise renames: delivery is at-least-once, so the same change may
come twice, and a source that cannot tell what a table looked like before (PostgreSQL
after a restart) sends ``before = None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeAlias

from .definitions import ColumnDefinition, TableDefinition
from .events import Position, RowEvent, qualified_name

#: What happened to the table. ``describe`` states a table's definition without a known
#: statement behind it: a source that meets a table for the first time in a session (a new
#: table, or any table after a restart) and cannot tell what changed.
SchemaChangeKind: TypeAlias = Literal[
    "create", "alter", "rename", "truncate", "drop", "describe", "create_database",
    "drop_database",
]
SCHEMA_CHANGE_KINDS: tuple[SchemaChangeKind, ...] = (
    "create", "alter", "rename", "truncate", "drop", "describe", "create_database",
    "drop_database",
)


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One schema change of ``schema.table``, as the source committed it.

    ``before``/``after`` are the table's definitions around the change (``before`` is
    ``None`` for ``create``/``describe`` or when the source cannot know it, ``after`` is
    ``None`` for ``drop`` and database-level changes). ``renamed_from`` is the table's
    ``(schema, table)`` before a ``rename``. ``renamed_columns`` maps old to new column
    names where the source recognised a column rename. ``ddl`` is the statement where the
    source has it (MySQL's binlog does, PostgreSQL's logical replication does not).
    ``position``, ``committed_at`` and ``txid`` mean what they mean on a row event;
    ``sequence`` places the change among them, and may equal that of the row event after
    it (a source whose changes depend on where a session started, PostgreSQL's, gives
    them no number of their own so the rows' numbers stay the same on every replay).
    """

    schema: str
    table: str
    kind: SchemaChangeKind
    before: TableDefinition | None = None
    after: TableDefinition | None = None
    ddl: str | None = None
    renamed_from: tuple[str, str] | None = None
    renamed_columns: tuple[tuple[str, str], ...] = ()
    position: Position = None
    committed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    txid: str | None = None
    sequence: int | None = None

    #: Where a row event has its action: lets logs and dead letters name both alike.
    action: ClassVar[str] = "schema"
    #: A schema change keys no row.
    pk: ClassVar[Any] = None

    def __post_init__(self) -> None:
        if self.kind not in SCHEMA_CHANGE_KINDS:
            raise ValueError(
                f"kind must be one of {', '.join(SCHEMA_CHANGE_KINDS)}, not {self.kind!r}")
        if self.committed_at.tzinfo is None:
            raise ValueError("committed_at must be timezone-aware (UTC)")

    @property
    def name(self) -> str:
        """``"{table}_schema"``, as a row event's ``"{table}_{action}"``."""
        return f"{self.table}_schema"

    @property
    def qualified_table(self) -> str:
        return qualified_name(self.schema, self.table)

    @property
    def changed(self) -> bool:
        """Whether ``before`` and ``after`` differ (or one of them is unknown)."""
        return self.before is None or self.after is None or self.before != self.after


#: ``(index, change)``: a schema change placed after ``index`` row events of its batch.
PlacedSchemaChange: TypeAlias = tuple[int, SchemaChange]


def _column_to_dict(column: ColumnDefinition) -> dict[str, Any]:
    return {"name": column.name, "type": column.type, "nullable": column.nullable,
            "default": column.default}


def _definition_to_dict(definition: TableDefinition | None) -> dict[str, Any] | None:
    if definition is None:
        return None
    return {"columns": [_column_to_dict(column) for column in definition.columns],
            "key_columns": list(definition.key_columns)}


def _definition_from_dict(data: dict[str, Any] | None) -> TableDefinition | None:
    if data is None:
        return None
    return TableDefinition(
        tuple(ColumnDefinition(c["name"], c["type"], bool(c.get("nullable", True)),
                               c.get("default")) for c in data["columns"]),
        tuple(data.get("key_columns") or ()),
    )


def schema_change_to_dict(change: SchemaChange) -> dict[str, Any]:
    """The change as JSON-ready data, marked ``"action": "schema"`` so that a reader of a
    mixed log (the ``jsonl`` sink's) tells it from a row event."""
    return {
        "name": change.name,
        "schema": change.schema,
        "table": change.table,
        "action": "schema",
        "kind": change.kind,
        "before": _definition_to_dict(change.before),
        "after": _definition_to_dict(change.after),
        "ddl": change.ddl,
        "renamed_from": list(change.renamed_from) if change.renamed_from else None,
        "renamed_columns": [list(pair) for pair in change.renamed_columns],
        "position": change.position,
        "committed_at": change.committed_at.isoformat(),
        "txid": change.txid,
        "sequence": change.sequence,
    }


def schema_change_from_dict(data: dict[str, Any]) -> SchemaChange:
    """Rebuild the change written by :func:`schema_change_to_dict`."""
    renamed_from = data.get("renamed_from")
    return SchemaChange(
        schema=data["schema"],
        table=data["table"],
        kind=data["kind"],
        before=_definition_from_dict(data.get("before")),
        after=_definition_from_dict(data.get("after")),
        ddl=data.get("ddl"),
        renamed_from=(renamed_from[0], renamed_from[1]) if renamed_from else None,
        renamed_columns=tuple((old, new) for old, new in data.get("renamed_columns") or ()),
        position=data.get("position"),
        committed_at=datetime.fromisoformat(data["committed_at"]),
        txid=data.get("txid"),
        sequence=data.get("sequence"),
    )


def shift(placed: Iterable[PlacedSchemaChange], by: int) -> tuple[PlacedSchemaChange, ...]:
    """``placed`` with every index moved by ``by`` (batches merged or cut)."""
    return tuple((index + by, change) for index, change in placed)


#: Anything a source delivers and a dead letter may hold: a row event or a schema change.
StreamEvent: TypeAlias = RowEvent | SchemaChange
