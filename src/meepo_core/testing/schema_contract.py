"""Schema-change batches on the contract table, for :class:`~meepo_core.testing.SinkContract`
and for sinks' own tests of schema changes."""

from __future__ import annotations

from ..definitions import ColumnDefinition, TableDefinition
from ..events import Batch, RowEvent
from ..schema_changes import SchemaChange
from .contract_rows import CONTRACT_STAMP, contract_row

#: The contract table as a source would describe it: ``id`` (the key), ``name``, ``price``,
#: ``updated_at``.
CONTRACT_DEFINITION = TableDefinition(
    (
        ColumnDefinition("id", "integer", nullable=False),
        ColumnDefinition("name", "varchar(64)"),
        ColumnDefinition("price", "numeric(10,2)"),
        ColumnDefinition("updated_at", "timestamp with time zone"),
    ),
    ("id",),
)
#: The contract table after :func:`contract_schema_batches`' change: a nullable ``note``.
EVOLVED_DEFINITION = TableDefinition(
    (*CONTRACT_DEFINITION.columns, ColumnDefinition("note", "varchar(40)")), ("id",)
)


def contract_schema_batches(schema: str = "meepo_contract", table: str = "items") -> list[Batch]:
    """After :func:`~meepo_core.testing.contract_events`: one transaction that adds a
    nullable column ``note varchar(40)`` to the table (a schema change, sequence 200,
    position 7) and then writes id 7 with a note (sequence 201), then one that updates it
    (position 8)."""
    change = SchemaChange(
        schema, table, "alter", CONTRACT_DEFINITION, EVOLVED_DEFINITION,
        ddl=f"ALTER TABLE {table} ADD COLUMN note varchar(40)", position=7,
        committed_at=CONTRACT_STAMP, txid="tx7", sequence=200,
    )
    seven = {**contract_row(7, "seven"), "note": "added with the column"}
    later = {**seven, "note": "changed"}
    return [
        Batch((RowEvent(schema, table, "write", 7, None, seven, 7, CONTRACT_STAMP, "tx7", 201),),
              7, schema_changes=((0, change),)),
        Batch((RowEvent(schema, table, "update", 7, seven, later, 8, CONTRACT_STAMP, "tx8",
                        202),), 8),
    ]
