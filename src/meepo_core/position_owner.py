"""Who owns a pipeline's position: the checkpoint store (at-least-once, the default), or
one transactional sink that stores each batch's position in the same transaction as its
data (exactly-once into that sink).

A sink that can own the position subclasses :class:`TransactionalSink`. When its config
claims the position (``exactly_once = true``), :func:`position_store` puts a
:class:`SinkPositionStore` in the pipeline in place of the configured checkpoint store:
the runner then resumes from the position the sink gives back, and the configured store
keeps only what the sink does not (snapshot progress, snapshot requests, and a copy of
the position for ``meepo list``). Exactly one owner per pipeline: two sinks that both
claim it are a config error.

Partitioned positions: a source whose workers each hold some partitions (``kafka``) gives
positions ``{"offsets": {topic: {partition: next_offset}}, ...}``. :func:`position_parts`
splits them so that an owner stores each partition's offset apart (workers of one group
that share a destination never overwrite each other's offsets), and
:func:`join_position_parts` gives the stored parts back as one position.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from .checkpoints import Checkpoint, CheckpointStore
from .errors import ConfigError
from .events import Position
from .sink import Sink

#: The part of a position that is not partitioned (the whole position of most sources).
WHOLE = ""


class TransactionalSink(Sink):
    """A sink that can own the pipeline's position (exactly-once into it).

    Contract, when :attr:`claims_position` is true:

    * ``apply(batch)`` writes the batch's data and, when ``batch.position`` is not None and
      the run is the pipeline's own (``context.purpose == "run"``), the position, in one
      transaction of the destination: after a crash at any point the destination holds both
      or neither. Before committing it makes the pipeline's dead letters durable
      (``context.dead_letters.sync()``): the position must not pass a dead letter that a
      crash could lose. A batch whose partitioned parts are all at or behind the stored
      ones was applied already and is skipped.
    * :meth:`stored_position` gives back the last position committed that way (None before
      the first), without side effects; :meth:`claim_position` does the same for the
      runner at start, first fencing any earlier writer of the same pipeline where the
      destination can (a Kafka transactional id), so the position read cannot move after.
      Both may be called before ``open`` and connect what they need.
    """

    @property
    @abc.abstractmethod
    def claims_position(self) -> bool:
        """Whether this sink's config asks it to own the position (``exactly_once``)."""

    @abc.abstractmethod
    def stored_position(self, pipeline: str) -> Position | None:
        """The position last committed with the data of pipeline ``pipeline``."""

    def claim_position(self, pipeline: str) -> Position | None:
        """Fence earlier writers of ``pipeline`` (where the destination can), then return
        :meth:`stored_position`. Called once by the runner, before ``open``."""
        return self.stored_position(pipeline)


class SinkPositionStore(CheckpointStore):
    """The checkpoint store of a pipeline whose position a :class:`TransactionalSink` owns:
    positions come from the sink; snapshot progress and requests live in ``store``, which
    also gets a copy of each saved checkpoint (shown by ``meepo list``, never resumed
    from)."""

    def __init__(self, sink: TransactionalSink, label: str, pipeline: str,
                 store: CheckpointStore) -> None:
        self.sink = sink
        self.label = label
        self.pipeline = pipeline
        self.store = store
        self.description = (f"{label} (exactly-once: the position is stored with the data; "
                            f"snapshot progress in {store.description})")

    def _with_progress(self, position: Position | None) -> Checkpoint | None:
        if position is None:
            return None
        kept = self.store.load()
        if kept is None:
            return Checkpoint(position)
        # the kept record's pipeline and time: a foreign one is refused as for any store
        return Checkpoint(position, kept.snapshot, kept.pipeline, kept.saved_at)

    def load(self) -> Checkpoint | None:
        return self._with_progress(self.sink.stored_position(self.pipeline))

    def claim(self) -> Checkpoint | None:
        """:meth:`load` for the runner's start: through :meth:`TransactionalSink.claim_position`."""
        return self._with_progress(self.sink.claim_position(self.pipeline))

    def stored_position(self) -> Position | None:
        """The owner's position now (sources re-read it when partitions move to them)."""
        return self.sink.stored_position(self.pipeline)

    def save(self, checkpoint: Checkpoint) -> None:
        self.store.save(checkpoint)

    def add_request(self, request: dict[str, Any]) -> None:
        self.store.add_request(request)

    def requests(self) -> list[dict[str, Any]]:
        return self.store.requests()

    def remove_requests(self, ids: Collection[str]) -> None:
        self.store.remove_requests(ids)

    def close(self) -> None:
        self.store.close()


def position_store(sinks: Sequence[tuple[str, Sink]], store: CheckpointStore,
                   pipeline: str, key_path: str) -> CheckpointStore:
    """``store``, or a :class:`SinkPositionStore` over it when one sink claims the position.
    Raises :class:`ConfigError` (at ``key_path``, the pipeline's sinks) when several do, or
    when the owner is not the last sink: the delivery engine applies sinks in order, so only
    then has every other sink applied a batch before the owner commits its position (they
    stay at-least-once; a crash cannot make them skip a batch)."""
    owners = [(label, sink) for label, sink in sinks
              if isinstance(sink, TransactionalSink) and sink.claims_position]
    if len(owners) > 1:
        raise ConfigError(
            key_path,
            f"{' and '.join(label for label, _ in owners)} both claim the pipeline's position "
            "(exactly_once = true); only one sink can own it: keep exactly_once on one sink "
            "and split the others into a pipeline of their own")
    if not owners:
        return store
    label, sink = owners[0]
    if sink is not sinks[-1][1]:
        # the runner resumes after what the owner committed: a sink applied after it would
        # lose the batch the owner committed just before a crash
        raise ConfigError(
            key_path,
            f"{label} owns the pipeline's position (exactly_once = true) but is not the last "
            "sink: the sinks after it could miss a batch after a crash; move it to the end "
            "of sinks")
    return SinkPositionStore(sink, label, pipeline, store)


def claim_checkpoint(store: CheckpointStore) -> Checkpoint | None:
    """The checkpoint a run starts from: claimed from the owning sink, or loaded."""
    return store.claim() if isinstance(store, SinkPositionStore) else store.load()


def position_parts(position: Position) -> dict[str, Any]:
    """``position`` split into independently stored parts: ``{"topic/partition":
    next_offset}`` for a partitioned position, else ``{WHOLE: position}``."""
    offsets = position.get("offsets") if isinstance(position, Mapping) else None
    if not isinstance(offsets, Mapping):
        return {WHOLE: position}
    return {f"{topic}/{partition}": offset
            for topic, partitions in offsets.items() for partition, offset in partitions.items()}


def join_position_parts(parts: Mapping[str, Any]) -> Position | None:
    """The position stored as ``parts`` (see :func:`position_parts`); None when empty."""
    if not parts:
        return None
    if WHOLE in parts:
        return parts[WHOLE]
    offsets: dict[str, dict[str, Any]] = {}
    for key, offset in sorted(parts.items()):
        topic, partition = key.rsplit("/", 1)
        offsets.setdefault(topic, {})[partition] = offset
    return {"offsets": offsets}


def is_partitioned(parts: Mapping[str, Any]) -> bool:
    """Whether ``parts`` are partition offsets (which only move forward)."""
    return WHOLE not in parts
