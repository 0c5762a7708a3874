"""meepo: event sourcing and event broadcasting for databases.

The public API for plugin authors: :data:`hookimpl`, :class:`Source`, :class:`Sink`,
:class:`RowEvent`, :class:`Batch`, :class:`Options`, :class:`Batcher` and the errors.
"""

from .batching import Batcher
from .checkpoints import CheckpointStore
from .context import PipelineContext
from .dead_letters import DeadLetterStore
from .errors import CheckpointError, ConfigError, MeepoError, SinkError, SourceError
from .events import ACTIONS, UNCHANGED, Action, Batch, Position, PrimaryKey, RowEvent
from .hookspecs import hookimpl
from .options import Options
from .sink import Sink
from .source import Source

__all__ = [
    "ACTIONS",
    "Action",
    "Batch",
    "Batcher",
    "CheckpointError",
    "CheckpointStore",
    "ConfigError",
    "DeadLetterStore",
    "MeepoError",
    "Options",
    "PipelineContext",
    "Position",
    "PrimaryKey",
    "RowEvent",
    "Sink",
    "SinkError",
    "Source",
    "SourceError",
    "UNCHANGED",
    "hookimpl",
]
