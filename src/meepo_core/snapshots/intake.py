"""A run's snapshots: which jobs it has (the saved progress, the initial snapshot, the
tables the run was asked for, requests taken while it runs), when the next chunk starts and
what the run shows meanwhile; and :func:`request_snapshot`, which queues a request for a
pipeline's runs (``meepo snapshot NAME``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, MeepoError, SourceError
from .jobs import SnapshotTable, new_request_id
from .progress import SnapshotProgress
from .windows import SnapshotCoordinator

if TYPE_CHECKING:
    from ..checkpoints import Checkpoint
    from ..context import PipelineContext
    from ..pipeline import Pipeline

log = logging.getLogger("meepo.snapshot")
#: Seconds between looks for snapshot requests (``meepo snapshot NAME``) while running.
REQUEST_POLL_SECONDS = 1.0


class SnapshotIntake:
    """The snapshots of one run of ``pipeline``; used by the runner's applying thread only
    (not thread-safe). The runner hands the batches to :attr:`coordinator`, calls
    :meth:`advance` between batches, saves :meth:`state` with each checkpoint (also when
    only :attr:`changed` says it moved), calls :meth:`saved` after that save, and
    :meth:`end` when the run ends.

    Built by :meth:`start`: with the jobs of the saved progress (``checkpoint``), of an
    initial snapshot (the ``snapshot`` setting, no checkpoint yet), of ``tables``
    (``[]``: every table) and of the requests waiting in the checkpoint store.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        context: PipelineContext,
        checkpoint: Checkpoint | None,
        tables: Sequence[str] | None,
        progress: SnapshotProgress | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.context = context
        source = pipeline.source
        self.coordinator = SnapshotCoordinator(
            source, pipeline.settings.snapshot_chunk_size,
            checkpoint.snapshot if checkpoint is not None else None, context.metrics,
        )
        #: The state changed since the last checkpoint (a request was taken): save it even
        #: when no position moved.
        self.changed = False
        self._taken: list[str] = []  # request ids adopted, removed from the store once saved
        self._last_poll = 0.0
        self._progress = progress if progress is not None else SnapshotProgress()
        if checkpoint is None and pipeline.settings.snapshot != "never":
            self.coordinator.add(new_request_id("initial"), source.snapshot_tables(None))
            self.changed = True
        if tables is not None:
            self.coordinator.add(new_request_id(), source.snapshot_tables(tables or None))
            self.changed = True
        self.take_requests()
        if self.coordinator.busy:
            log.info("pipeline %s: snapshot of %s", pipeline.name,
                     ", ".join(job.table.qualified for job in self.coordinator.jobs))

    @classmethod
    def start(
        cls,
        pipeline: Pipeline,
        context: PipelineContext,
        checkpoint: Checkpoint | None,
        tables: Sequence[str] | None,
    ) -> SnapshotIntake | None:
        """The run's snapshots; None when the source cannot snapshot (then ``tables`` must
        be None: :class:`~meepo_core.errors.SourceError` otherwise)."""
        if not pipeline.source.supports_snapshots:
            if tables is not None:
                raise SourceError(f"pipeline {pipeline.name}: its source cannot snapshot "
                                  "tables")
            return None
        return cls(pipeline, context, checkpoint, tables)

    def advance(self) -> bool:
        """Take new requests (at most every ``REQUEST_POLL_SECONDS``), show progress and
        start the next chunk. True once the snapshot of an ``initial_only`` run is done:
        the run ends."""
        now = time.monotonic()
        if now - self._last_poll >= REQUEST_POLL_SECONDS:
            self._last_poll = now
            self.take_requests()
        coordinator = self.coordinator
        self._progress.show(coordinator)
        coordinator.start_chunk()
        if self.pipeline.settings.snapshot == "initial_only" and not coordinator.busy:
            log.info('pipeline %s: initial snapshot done (snapshot = "initial_only")',
                     self.pipeline.name)
            return True
        return False

    def take_requests(self) -> None:
        """Queue the snapshots the source asked for (through the context) and the requests
        waiting in the checkpoint store; a request the source refuses is logged, or recorded
        as refused for ``meepo snapshot --status``."""
        source, coordinator = self.pipeline.source, self.coordinator
        for table, where in self.context.take_snapshot_requests():
            try:
                (found,) = source.snapshot_tables([table])
            except MeepoError as exc:
                log.error("snapshot of %s where %s refused: %s", table, where, exc)
                continue
            coordinator.add(new_request_id("source"), [found], where)
            self.changed = True
        for request in self.pipeline.checkpoints.requests():
            request_id = str(request.get("id"))
            if request_id in coordinator.adopted:
                continue
            try:
                tables = source.snapshot_tables(request.get("tables") or None)
            except MeepoError as exc:
                log.error("snapshot request %s refused: %s", request_id, exc)
                coordinator.refuse(request_id, str(exc))
            else:
                coordinator.add(request_id, tables, request.get("where"))
                log.info("snapshot request %s taken: %s", request_id,
                         ", ".join(table.qualified for table in tables))
            self._taken.append(request_id)
            self.changed = True

    def state(self) -> dict[str, Any] | None:
        """The progress to save with the next checkpoint (see
        :meth:`SnapshotCoordinator.state`)."""
        return self.coordinator.state()

    def saved(self) -> None:
        """The state was saved with a checkpoint: the requests taken are adopted there, so
        they leave the store's queue."""
        self.changed = False
        if self._taken:
            self.pipeline.checkpoints.remove_requests(self._taken)
            self._taken = []

    def end(self) -> None:
        """The run ends: leave the terminal on a fresh line."""
        self._progress.end()


def request_snapshot(
    pipeline: Pipeline, tables: Sequence[str] = ()
) -> tuple[dict[str, Any], list[SnapshotTable]]:
    """Queue a snapshot of ``tables`` (``schema.table``; none: every table) in the
    pipeline's checkpoint store, as ``meepo snapshot NAME`` does: a running pipeline takes
    it within ``REQUEST_POLL_SECONDS``, otherwise the next run does. Returns the request and
    the tables it covers; raises :class:`~meepo_core.errors.ConfigError` when the source
    cannot snapshot or a table is not one the pipeline follows. Opens and closes the source
    to resolve the tables."""
    if not pipeline.source.supports_snapshots:
        raise ConfigError(f"{pipeline.key_path}.source", "this source type cannot snapshot tables")
    if not pipeline.checkpoints.persistent:
        # The request would live only in this process: no later run could take it.
        raise ConfigError(
            f"{pipeline.key_path}.checkpoint",
            "a snapshot request needs a checkpoint store that outlives this command, not "
            f'{pipeline.checkpoints.description}; set checkpoint = "file:.meepo/'
            f'{pipeline.name}.json" (the default), or snapshot = "initial" to copy the tables '
            "at the start of every run",
        )
    pipeline.load_checkpoint()  # refuses another pipeline's checkpoint before any write
    try:
        resolved = pipeline.source.snapshot_tables(list(tables) or None)
    finally:
        pipeline.source.close()
    request = {
        "id": new_request_id(),
        "tables": [table.qualified for table in resolved] if tables else None,
        "requested_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    pipeline.checkpoints.add_request(request)
    return request, resolved
