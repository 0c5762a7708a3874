"""meepo: event sourcing and event broadcasting for databases.

The public API. Plugins and programs that embed meepo use only these names:

* the event model: :class:`RowEvent`, :class:`Batch`, :data:`ACTIONS`, :data:`UNCHANGED`;
  schema changes: :class:`SchemaChange` with :class:`TableDefinition` and
  :class:`ColumnDefinition` (:data:`StreamEvent` is either kind of event), their JSON
  (:func:`schema_change_to_dict`, :func:`schema_change_from_dict`);
* writing plugins: :data:`hookimpl`, :class:`Source`, :class:`Sink`, :class:`Options`,
  :class:`Batcher`, :class:`PipelineContext`; for sources that snapshot
  :class:`SnapshotTable`, :class:`SnapshotReader` and :func:`keyset_filter`; for database
  sources the ``tables``/``exclude_tables``/``columns`` options (:func:`parse_table_filter`,
  :class:`TableFilter`, :class:`ColumnRule`);
  :class:`CheckpointStore` with :class:`Checkpoint` and
  :func:`encode_checkpoint`/:func:`decode_checkpoint`; for sinks that own the position
  (exactly-once) :class:`TransactionalSink` with :func:`position_parts` and
  :func:`join_position_parts`; :class:`DeadLetterStore` with
  :func:`dead_letter_record`, the lossless JSON of events (:func:`event_to_json`,
  :func:`event_from_json`, :func:`event_to_dict`, :func:`event_from_dict`,
  :func:`encode_value`, :func:`decode_value`) and the errors, with
  :func:`describe_error` (one line for any exception; plugins register their driver's
  error type); :func:`backoff_delay` for a retry's wait;
* writing transforms: :class:`Transform` (with :func:`derive` to build a changed event);
* embedding: :func:`load_pipeline` gives a :class:`Pipeline` (a description) that a
  :class:`Runner` runs (``Runner(pipeline).run()``, a :class:`RunStats` back; a supervisor
  controls it with ``pause``/``resume``/``stop``, ``lag_seconds``), for which
  :func:`request_snapshot` queues a snapshot, or whose batches go to its sinks through a
  :class:`Delivery`;
  :meth:`Delivery.to_sinks` does the same for sink objects built in code.
"""

from .backoff import backoff_delay
from .batching import Batcher
from .checkpoints import (
    Checkpoint,
    CheckpointStore,
    MemoryCheckpointStore,
    decode_checkpoint,
    encode_checkpoint,
)
from .context import PipelineContext
from .dead_letters import DeadLetterStore, FileDeadLetterStore, dead_letter_record
from .definitions import ColumnDefinition, TableDefinition
from .delivery import Delivery
from .errors import (
    CheckpointError,
    ConfigError,
    MeepoError,
    SinkError,
    SourceError,
    describe_error,
)
from .events import (
    ACTIONS,
    UNCHANGED,
    Action,
    Batch,
    Position,
    PrimaryKey,
    Row,
    RowEvent,
    SnapshotPlace,
    qualified_name,
)
from .hookspecs import hookimpl
from .json_numbers import JsonNumber, dumps_exact, json_number, loads_exact
from .lazy_exports import lazy_exports
from .options import REQUIRED, Computed, Options, OptionSpec
from .pipeline import Pipeline, load_pipeline
from .position_owner import TransactionalSink, join_position_parts, position_parts
from .runner import Runner, RunStats
from .schema_changes import (
    SCHEMA_CHANGE_KINDS,
    PlacedSchemaChange,
    SchemaChange,
    SchemaChangeKind,
    StreamEvent,
    schema_change_from_dict,
    schema_change_to_dict,
)
from .serialization import (
    decode_value,
    encode_value,
    event_from_dict,
    event_from_json,
    event_to_dict,
    event_to_json,
)
from .settings import PipelineSettings
from .sink import Sink
from .snapshots import SnapshotTable, keyset_filter, request_snapshot
from .source import SnapshotReader, Source
from .table_filter import ColumnRule, TableFilter, parse_table_filter
from .transforms import Transform, TransformError, derive
from .transforms.early_drops import DroppedColumns

__all__ = [
    "ACTIONS",
    "REQUIRED",
    "SCHEMA_CHANGE_KINDS",
    "UNCHANGED",
    "Action",
    "Batch",
    "Batcher",
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "ColumnDefinition",
    "ColumnRule",
    "Computed",
    "ConfigError",
    "DeadLetterStore",
    "Delivery",
    "DroppedColumns",
    "FileDeadLetterStore",
    "JsonNumber",
    "MeepoError",
    "MemoryCheckpointStore",
    "OptionSpec",
    "Options",
    "Pipeline",
    "PipelineContext",
    "PipelineSettings",
    "PlacedSchemaChange",
    "Position",
    "PrimaryKey",
    "Row",
    "RowEvent",
    "RunStats",
    "Runner",
    "SchemaChange",
    "SchemaChangeKind",
    "Sink",
    "SinkError",
    "SnapshotPlace",
    "SnapshotReader",
    "SnapshotTable",
    "Source",
    "SourceError",
    "StreamEvent",
    "TableDefinition",
    "TableFilter",
    "TransactionalSink",
    "Transform",
    "TransformError",
    "backoff_delay",
    "dead_letter_record",
    "decode_checkpoint",
    "decode_value",
    "derive",
    "describe_error",
    "dumps_exact",
    "encode_checkpoint",
    "encode_value",
    "event_from_dict",
    "event_from_json",
    "event_to_dict",
    "event_to_json",
    "hookimpl",
    "join_position_parts",
    "json_number",
    "keyset_filter",
    "lazy_exports",
    "load_pipeline",
    "loads_exact",
    "parse_table_filter",
    "position_parts",
    "qualified_name",
    "request_snapshot",
    "schema_change_from_dict",
    "schema_change_to_dict",
]
