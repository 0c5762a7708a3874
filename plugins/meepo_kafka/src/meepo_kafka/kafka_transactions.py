"""The ``kafka`` sink's exactly-once mode (``exactly_once = true``).

* A transactional producer, ``transactional.id`` = ``transactional_id`` (default
  ``meepo.<pipeline>``). :meth:`KafkaTransactions.claim` runs ``init_transactions`` when the
  pipeline starts: the cluster aborts what an earlier instance left open and *fences* it;
  its next produce or commit fails with a fatal error, and that instance stops with a
  one-line error and never writes again.
* Each batch is one Kafka transaction: its messages (schema change messages included, in
  their place among the rows) and the pipeline's position, written to
  the compacted ``positions_topic`` (key ``{"pipeline", "part"}``, value the part's JSON;
  see :func:`meepo_core.position_parts`). Consumers with ``isolation.level =
  read_committed`` see a batch's messages only once its position is committed with them.
* At start the position is read back from ``positions_topic`` with ``read_committed``, after
  fencing, so it cannot move after it is read.
* A message the cluster refuses for good aborts the transaction; its event goes to the
  dead-letter store and the batch is sent again without it. Any other failure aborts the
  transaction and raises a retryable error: the runner sends the batch again, and
  ``read_committed`` consumers never see the aborted copy.
* A source transaction split over several batches (only the last carries a position) is
  one Kafka transaction: the batches before the last are sent (and acknowledged) in the
  open transaction, which the last one commits. A failure in between aborts them all and
  stops the pipeline (the next run replays them from the stored position). Such a
  transaction must finish within ``transaction.timeout.ms`` (librdkafka's default 60 s;
  raise it in ``config``, up to the brokers' ``transaction.max.timeout.ms``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as Partition
from confluent_kafka.admin import AdminClient

from meepo_core import Batch, Position, SinkError, join_position_parts, position_parts

from .compat import NewTopic
from .config import CONNECT_TIMEOUT, SinkSettings, admin_config, base_config, describe

if TYPE_CHECKING:
    from .kafka_sink import KafkaSink

log = logging.getLogger("meepo.kafka")

#: librdkafka's ``transaction.timeout.ms`` default: how long an open transaction may last.
TRANSACTION_TIMEOUT = 60.0
#: Errors that say another producer with our transactional id took over.
FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


class KafkaTransactions:
    """The transactional side of one ``kafka`` sink: see the module docstring."""

    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        self.pipeline = ""
        self.producer: Producer | None = None
        #: The parts of the position committed so far (our own writes after the claim).
        self.stored: dict[str, Any] = {}
        #: A transaction is open (begun by a batch without a position).
        self.open = False

    def transactional_id(self, pipeline: str) -> str:
        return self.settings.transactional_id or f"meepo.{pipeline}"

    def producer_config(self, base: dict[str, Any], pipeline: str) -> dict[str, Any]:
        return {**base, "transactional.id": self.transactional_id(pipeline)}

    # -- start ---------------------------------------------------------------------------

    def claim(self, producer: Producer, pipeline: str) -> None:
        """Fence every earlier producer of ``pipeline`` (and abort what it left open)."""
        self.pipeline, self.producer = pipeline, producer
        self.ensure_topic()
        try:
            producer.init_transactions(CONNECT_TIMEOUT + TRANSACTION_TIMEOUT)
        except KafkaException as exc:
            raise SinkError(
                f"{self.settings.label}: the cluster refused transactions for "
                f"transactional.id {self.transactional_id(pipeline)!r} ({describe(exc)}); "
                "exactly_once needs Kafka 0.11+ with the transaction coordinator "
                "(transaction.state.log.*) and, with ACLs, WRITE on that transactional id",
                retryable=False) from exc
        self.stored = self.stored_parts(pipeline)

    def ensure_topic(self) -> None:
        """Create ``positions_topic`` (compacted, one partition) unless it exists."""
        topic = self.settings.positions_topic
        admin = AdminClient(admin_config(self.settings.bootstrap_servers, self.settings.config))
        if topic in admin.list_topics(timeout=CONNECT_TIMEOUT).topics:
            return
        future = admin.create_topics(
            [NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[topic]
        try:
            future.result(timeout=CONNECT_TIMEOUT)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise SinkError(
                    f"{self.settings.label}: cannot create positions_topic {topic!r} "
                    f"({describe(exc)}); create it (cleanup.policy=compact) or grant CREATE",
                    retryable=False) from exc

    def stored_position(self, pipeline: str) -> Position | None:
        return join_position_parts(self.stored_parts(pipeline))

    def stored_parts(self, pipeline: str) -> dict[str, Any]:
        """The committed parts of ``pipeline``'s position in ``positions_topic``, read with
        ``read_committed`` up to the partitions' ends (waiting for open transactions)."""
        topic = self.settings.positions_topic
        consumer = Consumer({
            **base_config(self.settings.bootstrap_servers),
            **{k: v for k, v in (self.settings.config or {}).items()
               if k.startswith(("security.", "sasl.", "ssl."))},
            "group.id": f"meepo-positions-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        })
        parts: dict[str, Any] = {}
        try:
            metadata = consumer.list_topics(topic, timeout=CONNECT_TIMEOUT).topics.get(topic)
            if metadata is None or metadata.error is not None:
                return parts
            ends = {}
            for partition in metadata.partitions:
                low, high = consumer.get_watermark_offsets(Partition(topic, partition),
                                                           timeout=CONNECT_TIMEOUT,
                                                           cached=False)
                if high > low:
                    ends[partition] = high
            if not ends:
                return parts
            consumer.assign([Partition(topic, p, -2) for p in ends])  # -2: the beginning
            deadline = time.monotonic() + TRANSACTION_TIMEOUT + CONNECT_TIMEOUT
            while time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is not None and message.error() is None:
                    key = json.loads(message.key() or b"{}")
                    if key.get("pipeline") == pipeline:
                        value = message.value()
                        if value is None:
                            parts.pop(key.get("part", ""), None)
                        else:
                            parts[key.get("part", "")] = json.loads(value)
                reached = consumer.position([Partition(topic, p) for p in ends])
                if all(tp.offset >= ends[tp.partition] for tp in reached):
                    return parts
            raise SinkError(f"{self.settings.label}: positions_topic {topic!r} could not be "
                            f"read to its end within {TRANSACTION_TIMEOUT:.0f}s")
        except KafkaException as exc:
            raise SinkError(f"{self.settings.label}: cannot read positions_topic {topic!r}: "
                            f"{describe(exc)}") from exc
        finally:
            consumer.close()

    # -- batches -------------------------------------------------------------------------

    def publish(self, sink: KafkaSink, batch: Batch, record: bool) -> None:
        """``batch`` and (with ``record``) its position in one transaction. The messages
        and the position are queued together and the commit waits for all of them (one
        wait per batch); failures reported meanwhile abort it and are settled after."""
        assert self.producer is not None, "claim() first"
        if record and batch.position is None:
            self._extend(sink, batch)
            return
        moved = self._moved(batch.position) if record and batch.position is not None else {}
        if record and batch.position is not None and not moved and not self.open:
            return  # every partition of it is at or behind the stored offsets: applied
        spanning = self.open
        while True:
            sink.refused.clear()
            sent: list[Any] = []
            try:
                self._begin()
                sent = sink.send_batch(batch, wait=False)
                for part, value in moved.items():
                    self.producer.produce(
                        self.settings.positions_topic,
                        json.dumps(value, separators=(",", ":"), default=str).encode(),
                        json.dumps({"pipeline": self.pipeline, "part": part},
                                   separators=(",", ":")).encode())
                sink.dead_letters_sync()  # durable before the position moves past them
                self._commit()
                self.open = False
                self.stored.update(moved)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if _fenced(error):
                    raise self.fenced(error) from exc
                self._abort()
                if spanning:
                    raise self._span_lost(exc) from exc
                try:
                    sink.settle(sent)  # refusals for good go to dead letters
                except SinkError:
                    if not sink.refused:
                        raise
                if not sink.refused:
                    raise SinkError(f"{self.settings.label}: the transaction failed "
                                    f"({describe(exc)}); it was aborted and the batch is sent "
                                    "again") from exc
            except SystemError as exc:
                # confluent-kafka 2.16: when flush() of a fenced transactional producer runs
                # more Python callbacks after setting the fatal KafkaException, it raises a
                # SystemError chained to it
                fatal = _raised_error(exc) or sink.take_fatal()
                if fatal is None:
                    raise
                raise self.fenced(fatal) from exc
            except SinkError as exc:
                self._abort()
                if spanning:
                    raise self._span_lost(exc) from exc
                if not sink.refused:
                    raise
            # refused messages aborted the transaction: send the batch again without them
            batch = _without(batch, {id(event) for event in sink.refused})

    def _extend(self, sink: KafkaSink, batch: Batch) -> None:
        """Send a batch without a position in the open transaction (begun if need be),
        waiting for its acknowledgements; the batch with the position commits it."""
        assert self.producer is not None
        try:
            self._begin()
            sink.send_batch(batch)
        except KafkaException as exc:
            if _fenced(exc.args[0]):
                raise self.fenced(exc.args[0]) from exc
            self._abort()
            raise self._span_lost(exc) from exc
        except SystemError as exc:  # see publish()
            fatal = _raised_error(exc) or sink.take_fatal()
            if fatal is None:
                raise
            raise self.fenced(fatal) from exc
        except SinkError as exc:
            if not exc.retryable:
                raise
            self._abort()
            raise self._span_lost(exc) from exc

    def _begin(self) -> None:
        assert self.producer is not None
        if not self.open:
            self.producer.begin_transaction()
            self.open = True

    def _span_lost(self, exc: BaseException) -> SinkError:
        return SinkError(
            f"{self.settings.label}: {describe(exc)}; the source transaction of this batch "
            "began in earlier batches and was aborted with them: stopping, the next run "
            "sends it again from the stored position", retryable=False)

    def close(self) -> None:
        """Abort a transaction left open (a source transaction cut short by a stop)."""
        if self.open:
            self._abort()

    def _moved(self, position: Position) -> dict[str, Any]:
        parts = position_parts(position)
        if "" in parts:
            return parts
        return {part: offset for part, offset in parts.items()
                if not isinstance(self.stored.get(part), int) or offset > self.stored[part]}

    def _commit(self) -> None:
        assert self.producer is not None
        while True:
            try:
                self.producer.commit_transaction(self.settings.delivery_timeout + 10)
                return
            except KafkaException as exc:
                if exc.args[0].retriable():
                    continue  # the outcome is unknown: committing again is safe
                raise

    def _abort(self) -> None:
        assert self.producer is not None
        self.open = False
        try:
            self.producer.abort_transaction(self.settings.delivery_timeout + 10)
        except KafkaException as exc:
            if _fenced(exc.args[0]):
                raise self.fenced(exc.args[0]) from exc
            log.warning("%s: abort failed: %s", self.settings.label, describe(exc))

    def fenced(self, error: KafkaError) -> SinkError:
        """The error that stops a fenced (or otherwise fatally failed) producer (the delivery
        engine puts the sink's label before it)."""
        tid = self.transactional_id(self.pipeline)
        if _fenced(error):
            why = (f"another instance of pipeline {self.pipeline} took over transactional.id "
                   f"{tid!r} and fenced this one")
        else:
            why = f"the transactional producer {tid!r} failed for good"
        return SinkError(f"{why} ({error.name()}: {error.str()}); "
                         "this instance stops and writes nothing more", retryable=False)

    def problems(self) -> list[str]:
        """``meepo check``: whether the cluster runs transactions (a throwaway transactional
        id, so a running instance is not fenced)."""
        checked = f"{self.settings.transactional_id or 'meepo'}.check"
        producer = Producer({**base_config(self.settings.bootstrap_servers),
                             **(self.settings.config or {}), "transactional.id": checked})
        try:
            producer.init_transactions(CONNECT_TIMEOUT)
        except KafkaException as exc:
            return [f"exactly_once: the cluster refused transactions ({describe(exc)}); it "
                    "needs the transaction coordinator (transaction.state.log.*) and, with "
                    "ACLs, WRITE on the transactional id"]
        return []


def _without(batch: Batch, refused: set[int]) -> Batch:
    """``batch`` without the events and schema changes whose ids are in ``refused``, each
    remaining schema change still after the rows it came after."""
    events: list[Any] = []
    changes: list[Any] = []
    for part in batch.in_order():
        if isinstance(part, tuple):
            events.extend(e for e in part if id(e) not in refused)
        elif id(part) not in refused:
            changes.append((len(events), part))
    return Batch(tuple(events), batch.position, batch.watermarks, tuple(changes))


def _raised_error(exc: BaseException | None) -> KafkaError | None:
    """The error of the :class:`KafkaException` that ``exc`` is, or was chained from."""
    while exc is not None:
        if isinstance(exc, KafkaException) and isinstance(exc.args[0], KafkaError):
            return exc.args[0]
        exc = exc.__cause__ or exc.__context__
    return None


def _fenced(error: KafkaError) -> bool:
    return error.code() in FENCED or error.fatal()
