"""meepo: event sourcing and event broadcasting for databases.

The public API. Plugins and programs that embed meepo use only these names:

* the event model: :class:`RowEvent`, :class:`Batch`, :data:`ACTIONS`, :data:`UNCHANGED`;
* writing plugins: :data:`hookimpl`, :class:`Source`, :class:`Sink`, :class:`Options`,
  :class:`Batcher`, :class:`PipelineContext`, :class:`CheckpointStore`,
  :class:`DeadLetterStore` and the errors;
* embedding: :func:`load_pipeline` gives a :class:`Pipeline` to ``run()`` (a
  :class:`RunStats` back) or to deliver batches to its sinks through a :class:`Delivery`;
  :meth:`Delivery.to_sinks` does the same for sink objects built in code.
"""

from .batching import Batcher
from .checkpoints import CheckpointStore, MemoryCheckpointStore
from .context import PipelineContext
from .dead_letters import DeadLetterStore, FileDeadLetterStore
from .delivery import Delivery
from .errors import CheckpointError, ConfigError, MeepoError, SinkError, SourceError
from .events import ACTIONS, UNCHANGED, Action, Batch, Position, PrimaryKey, RowEvent
from .hookspecs import hookimpl
from .options import Options
from .pipeline import Pipeline, load_pipeline
from .runner import RunStats
from .settings import PipelineSettings
from .sink import Sink
from .source import Source

__all__ = [
    "ACTIONS",
    "UNCHANGED",
    "Action",
    "Batch",
    "Batcher",
    "CheckpointError",
    "CheckpointStore",
    "ConfigError",
    "DeadLetterStore",
    "Delivery",
    "FileDeadLetterStore",
    "MeepoError",
    "MemoryCheckpointStore",
    "Options",
    "Pipeline",
    "PipelineContext",
    "PipelineSettings",
    "Position",
    "PrimaryKey",
    "RowEvent",
    "RunStats",
    "Sink",
    "SinkError",
    "Source",
    "SourceError",
    "hookimpl",
    "load_pipeline",
]
