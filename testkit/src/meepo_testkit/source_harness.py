"""What every database source's tests share: one test's tables on a real server, and
sources reading them in ``once`` runs.

A plugin's ``conftest.py`` subclasses :class:`SourceHarness` with the source class and the
options that point at the test's own database (or schema), and adds what is particular to
its server (a binlog position, a replication slot). The tests then build sources, contexts
and ``once`` runs the same way for every source, and the snapshot contract
(:class:`meepo_core.testing.SnapshotSourceContract`) runs on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from meepo_core import Batch, Options, PipelineContext, PipelineSettings, RowEvent, Source
from meepo_core.testing import make_context


@dataclass(kw_only=True)
class SourceHarness:
    """Sources of :attr:`source_class` built from :meth:`options`; subclass and implement
    :meth:`base_options`. Every context it made is in :attr:`contexts` (their metrics and
    dead letters stay readable after the run)."""

    #: The source type under test.
    source_class: ClassVar[type[Source]]

    tmp_path: Path
    pipeline: str = "source-tests"
    contexts: list[PipelineContext] = field(default_factory=list)

    def base_options(self) -> dict[str, Any]:
        """The source's options for this test's database (``type`` included)."""
        raise NotImplementedError

    def options(self, **overrides: Any) -> dict[str, Any]:
        """:meth:`base_options` with ``overrides``; an override of ``None`` removes the key."""
        options = {**self.base_options(), **overrides}
        return {key: value for key, value in options.items() if value is not None}

    def source(self, **overrides: Any) -> Any:
        """A new source from :meth:`options` (the caller closes it)."""
        return self.source_class.from_options(
            Options(self.options(**overrides), "source", self.tmp_path))

    def context(self, batch_size: int = 1000, batch_wait: float = 0.05) -> PipelineContext:
        settings = PipelineSettings(batch_size=batch_size, batch_wait=batch_wait)
        context = make_context(self.tmp_path, self.pipeline, settings)
        self.contexts.append(context)
        return context

    def batches(
        self, checkpoint: Any = None, *, batch_size: int = 1000, ack: bool = True,
        **overrides: Any,
    ) -> list[Batch]:
        """Every batch of a ``once`` stream from ``checkpoint`` (None: the configured
        start), acknowledging positions as the runner does after checkpoints (unless
        ``ack`` is False)."""
        source = self.source(**overrides)
        found = []
        try:
            for batch in source.stream(checkpoint, self.context(batch_size), once=True):
                found.append(batch)
                if ack and batch.position is not None:
                    source.acknowledge(batch.position)
        finally:
            source.close()
        return found

    def drain(
        self, checkpoint: Any = None, *, ack: bool = True, **overrides: Any
    ) -> tuple[list[RowEvent], Any]:
        """The events and the last position of a ``once`` stream from ``checkpoint``."""
        events: list[RowEvent] = []
        position = checkpoint
        for batch in self.batches(checkpoint, ack=ack, **overrides):
            events.extend(batch.events)
            if batch.position is not None:
                position = batch.position
        return events, position
