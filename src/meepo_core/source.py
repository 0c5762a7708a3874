"""The contract every source type implements."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from .errors import SourceError
from .events import Batch, Position, RowEvent
from .options import Options, OptionSpec

if TYPE_CHECKING:
    from .context import PipelineContext
    from .definitions import TableDefinition
    from .snapshots import SnapshotTable
    from .transforms.early_drops import DroppedColumns


class SnapshotReader(Protocol):
    """What a source's snapshot helper implements; a source that sets
    :attr:`Source.snapshots` to one supports snapshots, its snapshot methods delegating to
    it (see those methods for the contracts)."""

    def tables(self, names: Sequence[str] | None) -> list[SnapshotTable]: ...

    def last_key(self, table: SnapshotTable,
                 where: Mapping[str, Any] | None) -> tuple[Any, ...] | None: ...

    def read_chunk(self, table: SnapshotTable, after: tuple[Any, ...] | None, limit: int,
                   where: Mapping[str, Any] | None,
                   until: tuple[Any, ...] | None) -> list[RowEvent]: ...

    def write_watermark(self, mark: str) -> None: ...


class Source(abc.ABC):
    """Turns database changes into :class:`~meepo_core.events.Batch` es, in commit order.

    Lifecycle: ``from_options`` validates config (no I/O); ``check`` reaches the server;
    ``stream`` yields batches; ``close`` releases connections and is always called.
    Optional capabilities: ``acknowledge`` (confirm consumption upstream after a
    checkpoint) and snapshots (``snapshot_tables``, ``last_key``, ``read_chunk``,
    ``write_watermark``, or ``read_chunk_between`` for a source that places a chunk in its
    stream another way: the core then copies tables' current rows while streaming).

    Threads. A run (:class:`~meepo_core.runner.Runner`) uses one source instance from three
    threads, and a source must expect exactly these:

    - the *reader* thread (``meepo-source``) iterates :meth:`stream`, and nothing else;
    - the *applying* thread (the one that called ``Runner.run``) calls everything a run
      needs besides: :meth:`snapshot_tables`, :meth:`snapshot_ready`, :meth:`last_key`,
      :meth:`read_chunk_between` (so :meth:`read_chunk` and :meth:`write_watermark`),
      :meth:`acknowledge` and, at the end, :meth:`close`, all while the reader thread may
      be inside :meth:`stream`. :meth:`close` comes *before* the reader thread is joined:
      it must make a ``stream`` that waits on the server end or raise soon (the runner
      waits ``STOP_GRACE_SECONDS`` for it, then leaves it);
    - a supervisor (``meepo serve``) calls :meth:`health` from its own thread, every few
      seconds while the run lasts.

    Outside a run, one thread calls :meth:`check`, :meth:`check_resume`,
    :meth:`table_columns`, :meth:`current_position` and :meth:`snapshot_tables` (``meepo
    check``, ``meepo snapshot``, a side run's start), then :meth:`close`.

    ``stream`` may be called more than once on one instance, one call at a time: a
    ``--once`` run whose snapshot watermarks were written after the stream caught up
    reads the stream again from the last delivered position, after the previous iterator
    ended (its generator finished, not closed early). Two iterators are never open at once;
    a run that ends calls :meth:`close` once, after the last one.
    """

    #: The type's options, declared once (see :class:`~meepo_core.options.OptionSpec`):
    #: ``from_options`` reads them through these specs, and the docs tables and
    #: ``meepo plugins --options TYPE`` are generated from them. Empty: undeclared.
    OPTIONS: ClassVar[tuple[OptionSpec, ...]] = ()
    #: Whether every event :meth:`stream` yields is a new object that the source (and its
    #: caller) no longer holds once yielded. The run then lets the pipeline's transforms
    #: change events in place instead of copying them (about a third of a compiled
    #: chain's cost). Leave it False for a source that hands on objects it was given or
    #: keeps (the ``memory`` source yields its caller's events).
    yields_fresh_events: ClassVar[bool] = False

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

        Runs in the runner's reader thread, while the applying thread may call the snapshot
        methods (see the class docstring); it may be called again on the same instance
        after an earlier iterator ended, never while one is open.
        """

    def table_columns(self) -> dict[str, list[str]] | None:
        """The columns of each table the source follows, by ``schema.table``, as its events
        carry them (after its own column rules); None when the source cannot tell. ``meepo
        check`` warns about transforms that name columns no followed table has. Reaches
        the server like :meth:`check`."""
        return None

    def table_definitions(self) -> list[TableDefinition] | None:
        """The definition of each table the source follows, as its events carry it (after
        its own column rules); None when the source cannot tell. ``meepo check`` hands them
        to the sinks (:meth:`~meepo_core.sink.Sink.check_tables`). Reaches the server like
        :meth:`check`."""
        return None

    def current_position(self) -> Position | None:
        """Where the change stream ends right now (a ``latest`` start), for side runs that
        begin at the present; None when the source cannot tell (the configured start is
        used then)."""
        return None

    # -- optional capability: snapshots (see meepo_core.snapshots.windows) ---------------------
    #: A source that can snapshot sets this (or overrides the methods below).
    snapshots: SnapshotReader | None = None
    #: What to check, and how to fix it, when a snapshot's watermarks never come back
    #: through the change stream (ends the runner's error message).
    lost_watermarks_hint = ("check that the source follows its signal table (see the "
                            "source's README on snapshots)")

    @property
    def supports_snapshots(self) -> bool:
        """Whether this source implements the snapshot methods below."""
        return self.snapshots is not None or type(self).read_chunk is not Source.read_chunk

    def _snapshot_reader(self) -> SnapshotReader:
        if self.snapshots is None:
            raise SourceError(f"the {type(self).__name__} source cannot snapshot tables")
        return self.snapshots

    def snapshot_tables(self, names: Sequence[str] | None = None) -> list[SnapshotTable]:
        """The tables to snapshot: ``names`` (``schema.table``; each must be one the
        pipeline follows, else :class:`~meepo_core.errors.ConfigError` naming it), or every
        table the source follows. Each needs a primary key (or a documented fallback):
        raise :class:`~meepo_core.errors.SourceError` naming a table without one."""
        return self._snapshot_reader().tables(names)

    def last_key(
        self, table: SnapshotTable, where: Mapping[str, Any] | None = None
    ) -> tuple[Any, ...] | None:
        """The key of ``table``'s last row in key order (among the rows ``where`` selects),
        in the form :meth:`read_chunk` takes for ``after``; None when there is no row. A
        snapshot reads it when it starts and copies rows up to it: a row inserted later
        with a higher key comes through the change stream, so writers appending at the end
        of the key range cannot keep a snapshot from finishing."""
        return self._snapshot_reader().last_key(table, where)

    def read_chunk(
        self,
        table: SnapshotTable,
        after: tuple[Any, ...] | None,
        limit: int,
        where: Mapping[str, Any] | None = None,
        until: tuple[Any, ...] | None = None,
    ) -> list[RowEvent]:
        """Up to ``limit`` rows of ``table`` whose key is above ``after`` (all rows when
        None) and at most ``until`` (no bound when None), in key order as the database
        orders it, as events with action ``"read"``, ``after`` the row as the stream would
        give it and the same ``pk``. ``where`` limits rows to those whose columns equal the
        given values (None: IS NULL). One short statement on its own connection: no lock,
        no long transaction."""
        return self._snapshot_reader().read_chunk(table, after, limit, where, until)

    def read_chunk_between(
        self,
        low: str,
        high: str,
        table: SnapshotTable,
        after: tuple[Any, ...] | None,
        limit: int,
        where: Mapping[str, Any] | None = None,
        until: tuple[Any, ...] | None = None,
    ) -> list[RowEvent]:
        """Read a snapshot chunk (as :meth:`read_chunk`) and place it in the change stream
        between the watermarks ``low`` and ``high``: :meth:`stream` reports ``low`` at or
        before the read's point in the stream and ``high`` at or after it, so that every
        change committed before ``low`` is in the rows read and none after ``high`` is.
        The core calls this for each chunk, from the applying thread; the two marks are
        its own (unique per chunk).

        Default: :meth:`write_watermark` ``low``, :meth:`read_chunk`,
        :meth:`write_watermark` ``high``. A source that can read a chunk exactly at a known
        stream position (mysql on MariaDB) overrides it and places both marks there."""
        self.write_watermark(low)
        rows = self.read_chunk(table, after, limit, where, until)
        self.write_watermark(high)
        return rows

    def snapshot_ready(self) -> bool:
        """Whether a snapshot chunk may start now. A source whose stream fixes its start
        position only once connected (a ``latest`` start) returns False until then: a chunk
        read earlier could fall before that position, and the changes between would be in
        neither the copy nor the stream. The core asks before each chunk and tries again
        later while False."""
        return True

    def write_watermark(self, mark: str) -> None:
        """Commit ``mark`` into the change stream, so that :meth:`stream` meets it after
        everything committed before and reports it in :attr:`Batch.watermarks` (with
        :meth:`~meepo_core.batching.Batcher.watermark`), without delivering it as a row.
        Each call stands alone: what a mark means never depends on the calls before it."""
        self._snapshot_reader().write_watermark(mark)

    def health(self, pipeline: str) -> list[str]:
        """Problems of this running pipeline's source that need an operator although it
        delivers (a replication slot retaining more WAL than allowed), one line each naming
        the setting; empty when healthy. Supervisors (``meepo serve``'s ``/readyz``) call it
        every few seconds from another thread than ``stream``: use a short connection of
        its own, and return quickly when nothing is configured. Default: none."""
        return []

    def drop_columns_early(self, dropped: DroppedColumns) -> None:  # noqa: B027
        """Optional hook, called by a run before anything else reads the source: the
        pipeline's transforms remove ``dropped(schema, table, columns)`` from every event
        of ``schema.table`` before any step reads them (see
        :mod:`meepo_core.transforms.early_drops`). A source that decodes rows itself may
        leave those columns out of its events and definitions, stream and snapshot
        alike, and so never decode them; it must keep key columns (``pk`` is built from
        them). Ignoring it is always correct: the transforms still drop the columns."""

    def acknowledge(self, position: Position) -> None:  # noqa: B027 - optional hook
        """Called by the runner after ``position`` was checkpointed, i.e. after every sink
        applied every event up to it. Sources that must confirm consumption upstream (stream
        acks, outbox deletes) do it here. Runs in the applying thread, not in ``stream``'s,
        while ``stream`` may be reading."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once, also after errors, from the applying thread
        and before the reader thread is joined: a :meth:`stream` still waiting on the
        server must end (or raise) soon after."""
