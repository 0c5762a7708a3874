"""The contract every source type implements."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import TYPE_CHECKING, Self

from .events import Batch, Position
from .options import Options

if TYPE_CHECKING:
    from .context import PipelineContext


class Source(abc.ABC):
    """Turns database changes into :class:`~meepo_core.events.Batch` es, in commit order.

    Lifecycle: ``from_options`` validates config (no I/O); ``check`` reaches the server;
    ``stream`` yields batches; ``close`` releases connections and is always called.
    """

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Options) -> Self:
        """Build from config. Raise :class:`~meepo_core.errors.ConfigError` via
        ``options.error`` for bad values and call ``options.done()`` at the end."""

    def check(self) -> list[str]:
        """Reach the server and verify its settings and privileges.

        Returns one line per problem, each naming the setting and the fix; empty means ready.
        Connection failures raise :class:`~meepo_core.errors.SourceError`.
        """
        return []

    def check_resume(self, position: Position) -> list[str]:
        """Whether the source can still resume from ``position``, a saved checkpoint (e.g.
        the binlog it names was not purged); one line per problem with the fix. Called by
        ``meepo check``; reaching the server is the same as in :meth:`check`."""
        return []

    @abc.abstractmethod
    def stream(
        self, start: Position | None, context: PipelineContext, *, once: bool
    ) -> Iterator[Batch]:
        """Yield batches after ``start`` (a checkpoint; ``None`` means the configured start).

        Batches end on transaction boundaries, except that a huge transaction may be split
        into several batches of which only the last carries a position. With ``once`` the
        iterator ends when it has caught up with what was committed when it began;
        otherwise it runs until ``context.stopping`` is set, and must notice that within
        about a second even when no changes arrive.
        """

    def acknowledge(self, position: Position) -> None:  # noqa: B027 - optional hook
        """Called by the runner after ``position`` was checkpointed, i.e. after every sink
        applied every event up to it. Sources that must confirm consumption upstream (stream
        acks, outbox deletes) do it here; it may run on another thread than ``stream``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once, also after errors."""
