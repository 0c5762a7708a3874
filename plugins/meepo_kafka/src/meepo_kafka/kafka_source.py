"""``kafka`` source: a consumer-group worker; several ``meepo run`` workers of one group share
the partitions of the topics.

Delivery is at-least-once, and offsets never run ahead of the sinks:

* Batches hold the messages of one partition in offset order (so every change to one row
  arrives in order). A batch's position is ``{"group", "epoch", "offsets": {topic:
  {partition: next offset}}}``, cumulative over the partitions this worker holds.
* Offsets are committed to the group only for positions the runner acknowledged, i.e.
  after every sink applied them (:meth:`KafkaSource.acknowledge` records them; the
  consumer's own thread commits them, within a poll interval, on a revoke and at close).
* On a rebalance (eager protocol: every member gives back all its partitions, then gets
  its new share) the worker waits up to ``revoke_timeout`` seconds for the sinks to apply
  what it already handed to the runner, commits that, and only then lets the partitions go,
  so the next owner starts exactly after what was applied. If the sinks do not finish in
  time, those batches are *abandoned to replay*: their offsets are not committed (late
  acknowledgements carry an older epoch and are ignored) and the next owner applies them
  again. Partitions *lost* without a revoke (the worker missed its session or
  ``max.poll.interval.ms``) are abandoned the same way.
* The consumer group's committed offsets are where a worker resumes. The checkpoint only
  records what this worker applied; workers that share a project directory overwrite each
  other's checkpoint, which is harmless because it is never used to resume.
* When a sink owns the position (``exactly_once``, ``context.stored_position``), every
  partition this worker is given, at start and on each rebalance, resumes from the offset
  that sink committed with its data instead (the group's commits then only show lag): a
  worker killed mid-batch neither loses nor repeats a change in that sink.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as Partition

from meepo_core import Batch, Options, Position, RowEvent, Source, SourceError

from .cluster import (
    Unreachable,
    admin_and_metadata,
    fetch_metadata,
    group_problems,
    is_authorization,
    topic_problems,
)
from .compat import AclOperation
from .config import SOURCE_OPTIONS, SourceSettings, base_config, describe
from .debezium import QUIET
from .format_choice import make_format
from .formats import Headers, NotARowChange
from .joining import JoinNotice

if TYPE_CHECKING:
    from meepo_core import PipelineContext

log = logging.getLogger("meepo.kafka")

#: Seconds one poll waits for messages: bounds how late a stop or a commit is noticed.
POLL_SECONDS = 0.2
#: With ``once``, how long to wait for the group to hand out partitions before giving up.
JOIN_SECONDS = 30.0

TP = tuple[str, int]


class KafkaSource(Source):
    """Consumes the ``topics`` of ``group``; options in
    :class:`~meepo_kafka.config.SourceSettings`."""

    OPTIONS = SOURCE_OPTIONS  # declared in .config, where they are read
    yields_fresh_events = True  # decoded for this run, held nowhere else

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self.format = make_format(settings.format)
        self.consumer: Consumer | None = None
        self.label = f"kafka source {settings.group}"
        self._consumer_lock = threading.RLock()  # every consumer call
        self._state = threading.Condition()  # everything below
        self._epoch = 0
        self._assigned: set[TP] = set()
        self._delivered: dict[TP, int] = {}  # next offset after what the runner was given
        self._acked: dict[TP, int] = {}  # next offset after what the sinks applied
        self._committed: dict[TP, int] = {}
        self._closing = False
        self._context: PipelineContext | None = None
        self._missing: set[str] = set()
        self._targets: dict[TP, int] = {}  # once: where each partition ends
        self._starts: dict[TP, int] = {}  # once: where each partition starts
        self._join: JoinNotice | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        settings = SourceSettings.from_options(options)
        options.done()
        return cls(settings)

    def consumer_config(self) -> dict[str, Any]:
        return {
            **base_config(self.settings.bootstrap_servers),
            "group.id": self.settings.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.settings.start,
            "partition.assignment.strategy": "range",
            **(self.settings.config or {}),
            "error_cb": self._error,
        }

    def check(self) -> list[str]:
        try:
            admin, metadata = admin_and_metadata(self.settings.bootstrap_servers,
                                                 self.settings.config, self.settings.bootstrap_key)
        except Unreachable as exc:
            raise SourceError(str(exc)) from exc
        names = [t for t in self.settings.topics if not t.startswith("^")]
        problems = topic_problems(admin, names, metadata, "topics", AclOperation.READ,
                                  missing_is_problem=True)
        for pattern in (t for t in self.settings.topics if t.startswith("^")):
            if not any(re.match(pattern, name) for name in metadata.topics):
                problems.append(f"topics: no topic matches {pattern!r} yet")
        return problems + group_problems(admin, self.settings.group, "group")

    # -- reading -------------------------------------------------------------------------

    def stream(
        self, start: Position | None, context: PipelineContext, *, once: bool
    ) -> Iterator[Batch]:
        self._context = context
        consumer = Consumer(self.consumer_config())
        try:
            fetch_metadata(consumer, self.settings.bootstrap_servers,
                           self.settings.bootstrap_key)
        except Unreachable as exc:
            consumer.close()
            raise SourceError(str(exc)) from exc
        with self._consumer_lock:
            consumer.subscribe(list(self.settings.topics), on_assign=self._on_assign,
                               on_revoke=self._on_revoke, on_lost=self._on_lost)
            self.consumer = consumer
            self._join = JoinNotice(self.label, self.settings.group,
                                    self.settings.bootstrap_servers, self.settings.config,
                                    self._member_id)
        log.info("%s: joining to consume %s (the group's committed offsets say where to "
                 "resume)", self.label, ", ".join(self.settings.topics))
        began = time.monotonic()
        while not context.stopping.is_set():
            with self._consumer_lock:
                if self._closing:
                    return
                self._commit_acknowledged()
                messages = self._poll(consumer, context.batch_size)
                batches = self._batches(messages)
                done = once and self._caught_up(began)
            self._join.tick()
            yield from batches
            if done:
                return

    def _member_id(self) -> str | None:
        """This worker's member id in the group (None before it joined or after close)."""
        with self._consumer_lock:
            try:
                return self.consumer.memberid() if self.consumer is not None else None
            except RuntimeError:  # closed meanwhile
                return None

    def _poll(self, consumer: Consumer, most: int) -> list[Message]:
        """Up to ``most`` messages: waits up to ``POLL_SECONDS`` for the first, then takes
        what is already fetched. One message per ``poll`` so that a rebalance (served inside
        ``poll``) splits them: messages taken before it belong to the old assignment, were
        never delivered, and are dropped (their partitions' next owner, maybe this worker
        again, reads them from the committed offsets)."""
        taken: list[Message] = []
        deadline = time.monotonic() + POLL_SECONDS
        while len(taken) < most:
            epoch = self._epoch
            message = consumer.poll(max(0.0, deadline - time.monotonic()) if not taken else 0)
            if epoch != self._epoch:
                taken = []
            if message is None:
                break
            taken.append(message)
        return taken

    def _batches(self, messages: list[Message]) -> list[Batch]:
        by_partition: dict[TP, list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                self._message_error(error)
                continue
            tp = (message.topic() or "", message.partition() or 0)
            by_partition.setdefault(tp, []).append(message)
        batches = []
        for tp, group in by_partition.items():
            events = [event for message in group if (event := self._event(message)) is not None]
            with self._state:
                self._delivered[tp] = (group[-1].offset() or 0) + 1
                position = self._position()
            batches.append(Batch(tuple(events), position))
        return batches

    def _event(self, message: Message) -> RowEvent | None:
        value = message.value()
        if value is None:
            return None  # a tombstone: the delete before it carried the change
        try:
            return self.format.decode(message.key(), value, _headers(message))
        except NotARowChange as exc:
            log.log(logging.DEBUG if str(exc) in QUIET else logging.WARNING,
                    "%s: %s %s[%d]@%d is a Debezium %s: not a row change, not delivered",
                    self.label, self.settings.format, message.topic(), message.partition(),
                    message.offset(), exc)
            if self._context is not None:
                self._context.metrics.record_failure("source", f"{exc}_not_delivered")
            return None
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            offset = message.offset() or 0
            where = f"{message.topic()}[{message.partition()}]@{offset}"
            raise SourceError(
                f"message {where} is not a {self.settings.format} event ({describe(exc)}); "
                f"check format, or skip it: kafka-consumer-groups.sh --group "
                f"{self.settings.group} --reset-offsets --topic {message.topic()}:"
                f"{message.partition()} --to-offset {offset + 1} --execute"
            ) from exc

    def _message_error(self, error: KafkaError) -> None:
        code = error.code()
        if code == KafkaError._PARTITION_EOF:
            return
        if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
            text = error.str()
            missing = next((t for t in self.settings.topics if t in text), text)
            if missing not in self._missing:
                self._missing.add(missing)
                log.warning("%s: topic %s does not exist yet; waiting for it", self.label,
                            missing)
            return
        if is_authorization(error):
            raise SourceError(f"topics: not authorized ({error.name()}: {error.str()}); grant "
                              f"this client READ on the topics and on group "
                              f"{self.settings.group!r}")
        if error.fatal():
            raise SourceError(f"{self.label}: fatal consumer error: {error.name()}: "
                              f"{error.str()}")
        log.warning("%s: %s: %s", self.label, error.name(), error.str())

    def _position(self) -> Position:
        offsets: dict[str, dict[str, int]] = {}
        for (topic, partition), offset in sorted(self._delivered.items()):
            offsets.setdefault(topic, {})[str(partition)] = offset
        return {"group": self.settings.group, "epoch": self._epoch, "offsets": offsets}

    def _caught_up(self, began: float) -> bool:
        """With ``once``: every assigned partition reached the end it had when first seen
        (or nothing could be assigned: every topic is missing, or the join timed out)."""
        assert self.consumer is not None
        with self._state:
            assigned = set(self._assigned)
        if not assigned:
            return (len(self._missing) >= len(self.settings.topics)
                    or time.monotonic() - began > JOIN_SECONDS)
        new = [tp for tp in assigned if tp not in self._targets]
        if new:
            self._targets.update(self._ends(new))
        positions = self.consumer.position([Partition(t, p) for t, p in assigned])
        with self._state:
            for tp in positions:
                key = (tp.topic, tp.partition)
                reached = max(tp.offset, self._delivered.get(key, -1), self._starts[key])
                if reached < self._targets[key]:
                    return False
        return True

    def _ends(self, partitions: list[TP]) -> dict[TP, int]:
        """The high watermark of each partition, and (in ``_starts``) where reading starts:
        the committed offset, else the low or high watermark per ``start``."""
        assert self.consumer is not None
        committed = self.consumer.committed([Partition(t, p) for t, p in partitions],
                                            timeout=10)
        ends: dict[TP, int] = {}
        for tp in committed:
            key = (tp.topic, tp.partition)
            low, high = self.consumer.get_watermark_offsets(Partition(*key), timeout=10,
                                                            cached=False)
            ends[key] = high
            if key in self._starts:
                continue  # from the sink that owns the position (see _on_assign)
            if tp.offset != OFFSET_INVALID and tp.offset >= 0:
                self._starts[key] = tp.offset
            else:
                self._starts[key] = low if self.settings.start == "earliest" else high
        return ends

    # -- the group -----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[Partition]) -> None:
        owner = self._context.stored_position if self._context is not None else None
        if owner is not None:
            stored = _partition_offsets(owner())
            for partition in partitions:
                offset = stored.get((partition.topic, partition.partition))
                if offset is not None:
                    partition.offset = offset
                    self._starts[(partition.topic, partition.partition)] = offset
            consumer.assign(partitions)
            log.info("%s: resuming %s from the offsets stored by the sink that owns the "
                     "position", self.label, _names((p.topic, p.partition) for p in partitions))
        with self._state:
            self._epoch += 1
            self._assigned = {(p.topic, p.partition) for p in partitions}
            self._delivered.clear()
            self._acked.clear()
            self._committed.clear()
        if self._join is not None:
            self._join.joined()
        log.info("%s: assigned %s", self.label, _names(self._assigned) or "no partitions")

    def _on_revoke(self, consumer: Consumer, partitions: list[Partition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        behind = self._wait_for_acknowledgements(revoked)
        self._commit_acknowledged(revoked)
        self._let_go(revoked)
        if behind:
            log.warning("%s: partitions %s revoked before the sinks applied what this worker "
                        "read from them within revoke_timeout (%gs); those messages are "
                        "abandoned to replay: their next owner applies them again", self.label,
                        _names(behind), self.settings.revoke_timeout)
        log.info("%s: revoked %s", self.label, _names(revoked) or "no partitions")

    def _on_lost(self, consumer: Consumer, partitions: list[Partition]) -> None:
        """Partitions taken away without a revoke (the session or ``max.poll.interval.ms``
        expired, or a commit met a newer generation): nothing can be committed for them.
        The worker still waits (up to ``revoke_timeout``) for the sinks to finish what they
        hold, because while this callback runs it has not rejoined, and a group that still
        counts it as a member hands the partitions out only after it rejoins: their next
        owner replays from the last commit, but never alongside this worker."""
        lost = {(p.topic, p.partition) for p in partitions}
        self._wait_for_acknowledgements(lost)
        self._let_go(lost)
        log.warning("%s: partitions %s lost (the session, max.poll.interval.ms or the group "
                    "generation expired); what was not committed is applied again by their "
                    "next owner", self.label, _names(lost))

    def _let_go(self, partitions: set[TP]) -> None:
        """Forget ``partitions``; a new epoch, so late acknowledgements are ignored. The
        worker now waits to join the group again."""
        if self._join is not None:
            self._join.left()
        with self._state:
            self._epoch += 1
            self._assigned -= partitions
            for tp in partitions:
                self._delivered.pop(tp, None)
                self._acked.pop(tp, None)

    def _wait_for_acknowledgements(self, partitions: set[TP]) -> set[TP]:
        """Wait until the sinks applied everything delivered from ``partitions`` (or
        ``revoke_timeout`` passed, or the source is closing); returns the partitions with
        messages still unapplied."""
        deadline = time.monotonic() + self.settings.revoke_timeout
        with self._state:
            while True:
                behind = {tp for tp in partitions
                          if self._delivered.get(tp, -1) > self._acked.get(tp, -1)}
                left = deadline - time.monotonic()
                if not behind or self._closing or left <= 0:
                    return behind
                self._state.wait(min(left, POLL_SECONDS))

    def _commit_acknowledged(self, only: Iterable[TP] | None = None) -> None:
        """Commit the acknowledged offsets not yet committed. Called from the consumer's
        thread (or by ``close``) with the consumer lock held."""
        if self.consumer is None:
            return
        wanted = set(only) if only is not None else None
        with self._state:
            offsets = {tp: offset for tp, offset in self._acked.items()
                       if offset > self._committed.get(tp, -1) and tp in self._assigned
                       and (wanted is None or tp in wanted)}
        if not offsets:
            return
        try:
            results = self.consumer.commit(
                offsets=[Partition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=False)
        except KafkaException as exc:
            log.warning("%s: commit of %s failed (%s); it is retried, and if these partitions "
                        "move first, their next owner applies those messages again",
                        self.label, _names(offsets), describe(exc))
            return
        with self._state:
            for tp in results or ():
                key = (tp.topic, tp.partition)
                if tp.error is None and key in offsets:
                    self._committed[key] = offsets[key]

    def acknowledge(self, position: Position) -> None:
        """Record that the sinks applied everything up to ``position``; the consumer's
        thread commits it. Positions from before a rebalance are ignored (their partitions
        were committed on the revoke, or abandoned to replay)."""
        if not isinstance(position, dict) or position.get("group") != self.settings.group:
            return
        with self._state:
            if position.get("epoch") != self._epoch:
                return
            for topic, partitions in (position.get("offsets") or {}).items():
                for partition, offset in partitions.items():
                    tp = (topic, int(partition))
                    if offset > self._acked.get(tp, -1):
                        self._acked[tp] = offset
            self._state.notify_all()

    def _error(self, error: KafkaError) -> None:
        log.warning("%s: %s: %s", self.label, error.name(), error.str())

    def close(self) -> None:
        """Commit what was acknowledged, leave the group (its partitions move to the other
        workers at once) and close."""
        with self._state:
            self._closing = True
            self._state.notify_all()
        with self._consumer_lock:
            consumer = self.consumer
            if consumer is None:
                return
            try:
                self._commit_acknowledged()
                consumer.close()  # revokes (and commits) through _on_revoke
            except (KafkaException, RuntimeError) as exc:
                log.warning("%s: error while leaving the group: %s", self.label, describe(exc))
            finally:
                self.consumer = None


def _headers(message: Message) -> Headers:
    """A message's headers as (name, bytes) pairs (consumers always get bytes)."""
    found = message.headers()
    if not found:
        return None
    pairs = found.items() if isinstance(found, dict) else found
    return [(name, value.encode() if isinstance(value, str) else value) for name, value in pairs]


def _partition_offsets(position: Position) -> dict[TP, int]:
    """``{(topic, partition): next offset}`` of a position ``{"offsets": ...}``."""
    offsets = position.get("offsets") if isinstance(position, dict) else None
    return {(topic, int(partition)): int(offset)
            for topic, partitions in (offsets or {}).items()
            for partition, offset in partitions.items()}


def _names(partitions: Iterable[TP]) -> str:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        by_topic.setdefault(topic, []).append(partition)
    return ", ".join(f"{topic}[{','.join(map(str, parts))}]" for topic, parts in by_topic.items())
