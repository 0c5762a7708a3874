"""The contract every sink type implements."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar, Self

from .events import Batch
from .options import Options, OptionSpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .context import PipelineContext
    from .definitions import TableDefinition


class Sink(abc.ABC):
    """Applies batches of events somewhere durable.

    Contract (checked by :class:`meepo_core.testing.SinkContract`):

    * ``apply`` returns only when the batch is durable, or raises. Raise
      :class:`~meepo_core.errors.SinkError` with ``retryable=False`` for a failure that
      retrying cannot fix; anything else is retried with backoff by the runner.
    * Applying a batch twice leaves the same end state as applying it once, because
      delivery is at-least-once after a crash.
    * An event that can never be applied (a mapping error, say) goes to
      ``context.dead_letter(...)`` and counts as applied; nothing is dropped silently.
    * A sink that sets :attr:`follows_schema_changes` gets the schema changes of each
      batch (:attr:`Batch.schema_changes`, walked in order with :meth:`Batch.in_order`)
      and applies them, idempotently, before the rows after them; one it cannot apply
      safely goes to ``context.dead_letter(...)`` with an error that says what to do.
    """

    #: Whether ``apply`` sees schema changes (see :mod:`meepo_core.schema_changes`). When
    #: False (the default) the core removes them from the batches this sink gets, so a sink
    #: that keeps no table shape (a cache, a queue of row events) need not know about them.
    follows_schema_changes: ClassVar[bool] = False
    #: The type's options, declared once (see :class:`~meepo_core.options.OptionSpec`):
    #: ``from_options`` reads them through these specs, and the docs tables and
    #: ``meepo plugins --options TYPE`` are generated from them. Empty: undeclared.
    OPTIONS: ClassVar[tuple[OptionSpec, ...]] = ()

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Options) -> Self:
        """Build from config, validating every option (no I/O); end with ``options.done()``."""

    def open(self, context: PipelineContext) -> None:  # noqa: B027 - optional hook
        """Connect. Called once before the first ``apply``."""

    def check(self) -> list[str]:
        """Reach the destination; return one line per problem, empty when ready."""
        return []

    def check_tables(self, definitions: Sequence[TableDefinition],
                     ) -> tuple[list[str], list[str]]:
        """(problems, warnings) about the source's tables (their definitions as the events
        will carry them, from :meth:`~meepo_core.source.Source.table_definitions`), for
        ``meepo check``: a column type the sink cannot write (a problem: its rows would be
        dead-lettered) or cannot write as promised (a warning). One line each, naming the
        table, column and type, and the way out."""
        return [], []

    @abc.abstractmethod
    def apply(self, batch: Batch) -> None:
        """Apply every event of ``batch`` durably, in order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and disconnect. Called once, also after errors."""
