"""``kafka`` sink: publish every event to a topic per table, keyed by its primary key.

Contract:

* The key is the row's primary key with its column names, so every change to one row goes
  to one partition, in order (partitioner ``murmur2_random``, the Java client's, unless
  ``config`` names another). An update that changes the key is sent as a ``delete`` of the
  old key and a ``write`` of the new one (as Debezium does), each to its key's partition.
* The producer is idempotent with ``acks=all``. :meth:`KafkaSink.apply` returns only when
  the cluster acknowledged every message of the batch (every delivery report is in).
* A message the cluster refuses for good (too large, not authorized, invalid) goes to the
  dead-letter store with Kafka's reason; so does an event the format cannot encode.
* Any other failure raises a retryable :class:`~meepo_core.SinkError`; the runner sends the
  whole batch again, so consumers can see a message twice (the ``meepo.sequence`` header
  lets them skip what they applied).
* With ``exactly_once``, each batch and the pipeline's position are one Kafka transaction
  (:mod:`meepo_kafka.kafka_transactions`): ``read_committed`` consumers see each change once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any, Self

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from meepo_core import (
    Batch,
    Options,
    Position,
    RowEvent,
    SchemaChange,
    SinkError,
    StreamEvent,
    TableDefinition,
    TransactionalSink,
    join_position_parts,
)

from .cluster import (
    Unreachable,
    admin_and_metadata,
    fetch_metadata,
    is_authorization,
    topic_problems,
)
from .compat import AclOperation
from .config import SINK_OPTIONS, SinkSettings, base_config, describe
from .debezium_codec import OPS
from .format_choice import make_format
from .formats import POSITION_HEADER, SEQUENCE_HEADER, Format
from .kafka_schema_changes import SchemaChangeMessages
from .kafka_transactions import KafkaTransactions
from .topics import TopicRouter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from meepo_core import PipelineContext, TableDefinition

log = logging.getLogger("meepo.kafka")

#: Per-message refusals that sending again cannot fix: the event goes to dead letters.
#: (Size refusals are first retried alone, see :meth:`KafkaSink._resend_alone`.)
REFUSED = {
    # as a delivery report: the broker's answer (a producer's own refusal comes at produce())
    KafkaError.MSG_SIZE_TOO_LARGE: (
        "the broker refused it: larger than the topic's max.message.bytes, or the broker's "
        "message.max.bytes when the topic sets none; raise that setting, or make the row "
        "smaller"),
    KafkaError.RECORD_LIST_TOO_LARGE: "the message is larger than the broker accepts",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "this client may not write to the topic",
    KafkaError.INVALID_RECORD: "the broker rejected the record",
    KafkaError.TOPIC_EXCEPTION: "the topic name is invalid",
    KafkaError.INVALID_MSG_SIZE: "the message size is invalid",
    KafkaError.POLICY_VIOLATION: "the broker's policy rejected the message",
}

#: librdkafka's default ``message.max.bytes``, for a producer whose config sets none.
PRODUCER_MESSAGE_MAX_BYTES = 1_000_000

#: Refusals of a whole record batch for its size: librdkafka packs several messages into one
#: batch and does not split it, so each message is sent again alone before it is judged.
TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE}

Header = list[tuple[str, str | bytes | None]] | None
#: A queued message: topic, key, value, headers, and the event it was made from.
Sent = tuple[str, bytes | None, bytes | None, Header, StreamEvent]


def split_key_change(event: RowEvent) -> tuple[RowEvent, ...]:
    """``event``, or for an update that changes the primary key, a ``delete`` of the old key
    followed by a ``write`` of the new one (each with the event's sequence and position)."""
    columns = event.pk_columns
    before = event.before
    if event.action != "update" or not columns or before is None:
        return (event,)
    if event.definition is not None and not event.definition.key_columns:
        return (event,)  # no key: an update stays one update (as in Debezium)
    try:
        old = before[columns[0]] if len(columns) == 1 else tuple(before[c] for c in columns)
    except KeyError:
        return (event,)
    if old == event.pk:
        return (event,)
    return (dataclasses.replace(event, action="delete", pk=old, after=None),
            dataclasses.replace(event, action="write", before=None))


class KafkaSink(TransactionalSink):
    """Publishes batches to Kafka; options in :class:`~meepo_kafka.config.SinkSettings`.

    Schema changes are written in their place among the rows (see
    :mod:`meepo_kafka.kafka_schema_changes`): in the ``meepo`` format as a message of its own
    on its table's topic, in the ``debezium`` format as Debezium's schema change record
    (:mod:`meepo_kafka.debezium_schema_changes`). Without ``exactly_once`` each is
    acknowledged before the rows after it are sent; with it, it is one more message of the
    batch's transaction."""

    follows_schema_changes = True
    OPTIONS = SINK_OPTIONS  # declared in .config, where they are read

    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        self.router = TopicRouter(settings.topic, settings.topic_prefix, settings.topics)
        self.producer: Producer | None = None
        self.format: Format | None = None
        self.context: PipelineContext | None = None
        self._failures: list[tuple[KafkaError, Message]] = []
        self._fatal: KafkaError | None = None
        self._position: Any = None
        self._position_bytes = b""
        self.transactions = KafkaTransactions(settings) if settings.exactly_once else None
        #: Events dead-lettered by the current batch (exactly-once sends the rest again).
        self.refused: list[StreamEvent] = []
        self.schema_changes: SchemaChangeMessages | None = None
        self._skipped: set[str] = set()  # actions left out (Debezium's skipped.operations)
        self._skip_logged: set[str] = set()

    @classmethod
    def from_options(cls, options: Options) -> Self:
        settings = SinkSettings.from_options(options)
        options.done()
        return cls(settings)

    @property
    def label(self) -> str:
        return self.settings.label

    @property
    def claims_position(self) -> bool:
        return self.transactions is not None

    def stored_position(self, pipeline: str) -> Position | None:
        assert self.transactions is not None, "exactly_once is off"
        return self.transactions.stored_position(pipeline)

    def claim_position(self, pipeline: str) -> Position | None:
        assert self.transactions is not None, "exactly_once is off"
        self.producer = Producer(self.transactions.producer_config(self.producer_config(),
                                                                   pipeline))
        self.transactions.claim(self.producer, pipeline)
        return join_position_parts(self.transactions.stored)

    def producer_config(self) -> dict[str, Any]:
        """librdkafka's settings: meepo's guarantees, then the user's ``config``."""
        return {
            **base_config(self.settings.bootstrap_servers),
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "message.timeout.ms": int(self.settings.delivery_timeout * 1000),
            # successes need no report: flush() returning 0 says every message was acked
            "delivery.report.only.error": True,
            # Record batches travel and are stored compressed; consumers get the same
            # bytes. Debezium's schema part makes messages several times larger and
            # compresses to little: lz4 sends a fraction of the bytes for little CPU.
            "compression.type": "lz4",
            **(self.settings.config or {}),
            "on_delivery": self._report,
            "error_cb": self._error,
        }

    def open(self, context: PipelineContext) -> None:
        self.context = context
        self.format = make_format(self.settings.format,
                                  self.settings.server_name or context.pipeline,
                                  self.settings.schemas, self.settings.debezium)
        if self.settings.format == "debezium":
            self._skipped = {action for action, op in OPS.items()
                             if op in self.settings.debezium.skipped_operations}
        self.schema_changes = SchemaChangeMessages(self.settings, self.format, self.router)
        if self.transactions is not None:
            if self.producer is None:  # not claimed by a pipeline run: claim for this one
                self.claim_position(context.pipeline)
        else:
            self.producer = Producer(self.producer_config())
        try:
            fetch_metadata(self.producer, self.settings.bootstrap_servers,
                           self.settings.bootstrap_key)
        except Unreachable as exc:
            raise SinkError(str(exc), retryable=False) from exc

    def check(self) -> list[str]:
        try:
            admin, metadata = admin_and_metadata(self.settings.bootstrap_servers,
                                                 self.settings.config, self.settings.bootstrap_key)
        except Unreachable as exc:
            return [str(exc)]
        named = list((self.settings.topics or {}).values())
        fixed = self.settings.topic_prefix + self.settings.topic
        if "{" not in fixed:
            named.append(fixed)
        if self.settings.format == "debezium" and self.settings.server_name:
            named.append(self.settings.server_name)  # the schema change topic
        problems = topic_problems(admin, named, metadata, "topic", AclOperation.WRITE,
                                  missing_is_problem=False)
        if self.transactions is not None:
            problems += self.transactions.problems()
        return problems

    def check_tables(self, definitions: Sequence[TableDefinition],
                     ) -> tuple[list[str], list[str]]:
        """Column types the Debezium format does not write, or not always as Debezium."""
        if self.settings.format != "debezium":
            return [], []
        from .debezium_check import table_findings

        return table_findings(definitions, self.settings.debezium)

    # -- applying ------------------------------------------------------------------------

    def apply(self, batch: Batch) -> None:
        if self.transactions is not None:
            assert self.context is not None, "open() first"
            self.transactions.publish(self, batch, record=self.context.purpose == "run")
        else:
            self.send_batch(batch)

    def send_batch(self, batch: Batch, wait: bool = True) -> list[Sent]:
        """:meth:`_send` for a batch with schema changes too: each run of rows, and the
        messages of each schema change between them, in commit order. With ``wait``, a
        schema change is acknowledged before the rows after it are sent; without (one
        transaction), everything is queued and the caller's commit waits for it all."""
        if not batch.schema_changes:
            return self._send(batch, wait)
        parts = list(batch.in_order())
        last_rows = max((i for i, part in enumerate(parts)
                         if not isinstance(part, SchemaChange)), default=-1)
        sent: list[Sent] = []
        for index, part in enumerate(parts):
            # _send clears the failures reported so far: a transaction settles them all
            reported = list(self._failures) if index and not wait else []
            if isinstance(part, SchemaChange):
                sent += self._send_schema_change(part, wait)
            else:  # the batch's position ends its last run (Debezium's transaction END)
                sent += self._send(Batch(part, batch.position if index == last_rows
                                         else None), wait)
            if reported:
                self._failures[:0] = reported
        return sent

    def _send_schema_change(self, change: SchemaChange, wait: bool) -> list[Sent]:
        """Queue the messages of ``change`` (waiting for their acknowledgements with
        ``wait``). A change the format leaves out on purpose (a truncate that
        ``debezium.skipped_operations`` names) is counted; a PostgreSQL change in the
        Debezium format has no message, as in Debezium, and is not."""
        assert self.schema_changes is not None and self.context is not None, "open() first"
        messages, skipped = self.schema_changes.messages(change)
        if skipped:
            self.context.metrics.record_failure(self.label, skipped)
        if wait:
            self._failures.clear()
        sent: list[Sent] = []
        for topic, key, value, headers, partition in messages:
            if self._produce(topic, key, value, headers, change, partition):
                sent.append((topic, key, value, headers, change))
        if wait and sent:
            self._wait_for_reports(len(sent))
            self._settle(sent)
        return sent

    def _send(self, batch: Batch, wait: bool = True) -> list[Sent]:
        """Queue every message of ``batch``; with ``wait``, also wait for their reports and
        settle the failures (without: the caller's transaction commit waits for them)."""
        assert self.producer is not None and self.format is not None, "open() first"
        self._failures.clear()
        beat = self._heartbeat()
        if not batch.events:
            if beat and wait:
                self._wait_for_reports(1)
            return []
        sent: list[Sent] = []
        remember = sent.append
        produce = self.producer.produce
        topic_of, key_of, value_of = self.router.topic, self.format.key, self.format.value
        routed = self.router.routed
        tombstones, headers_of = self.settings.tombstones, self._headers
        format_headers, skipped = self.format.headers, self._skipped
        transactions = getattr(self.format, "transactions", None)  # Debezium's metadata
        if transactions is not None:
            transactions.start_batch()
        # consecutive events mostly share their table's name objects: its topic is kept
        schema: str | None = None
        table: str | None = None
        topic = ""
        for event in batch.events:
            if transactions is not None:
                self._send_transaction_records(transactions.begin_if_new(event), event, sent)
            parts = split_key_change(event) if event.action == "update" else (event,)
            for index, part in enumerate(parts):
                if skipped and part.action in skipped:
                    self._skip(part)
                    continue
                try:
                    if part.destination is not None:
                        topic, schema = routed(part.destination), None
                    elif part.table is not table or part.schema is not schema:
                        schema, table = part.schema, part.table
                        topic = topic_of(schema, table)
                    key = key_of(part)
                    value = value_of(part)
                except (TypeError, ValueError, OverflowError, RecursionError) as exc:
                    self._dead_letter(event, f"cannot encode as {self.format.name}: {exc}")
                    break
                headers = headers_of(part)
                own = format_headers(part, parts[1 - index] if len(parts) == 2 else None)
                if own:
                    headers = own + (headers or [])
                try:
                    produce(topic, value, key, headers=headers)
                except (BufferError, KafkaException):
                    if not self._produce(topic, key, value, headers, event):
                        break
                remember((topic, key, value, headers, event))
                if tombstones and part.action == "delete":
                    try:
                        produce(topic, None, key, headers=headers)
                    except (BufferError, KafkaException):
                        if not self._produce(topic, key, None, headers, event):
                            continue
                    remember((topic, key, None, headers, event))
        if transactions is not None and batch.position is not None:  # ends a transaction
            self._send_transaction_records(transactions.end(), batch.events[-1], sent)
        if wait:
            self._wait_for_reports(len(sent))
            self.settle(sent)
        if transactions is not None:
            transactions.batch_sent()
        return sent

    def settle(self, sent: list[Sent]) -> None:
        """Act on the delivery failures reported for ``sent`` (see :meth:`_settle`)."""
        if self._failures or self._fatal is not None:
            self._settle(sent)

    def _heartbeat(self) -> bool:
        """Queue Debezium's heartbeat record when its interval has passed (every batch,
        empty ones too, comes here); True when one was queued."""
        beat = getattr(self.format, "heartbeat", None)
        record = beat() if beat is not None else None
        if record is None:
            return False
        assert self.producer is not None
        try:
            self.producer.produce(getattr(self.format, "heartbeat_topic", ""), record[1],
                                  record[0])
        except (BufferError, KafkaException) as exc:  # the next interval sends another
            log.warning("%s: heartbeat not sent: %s", self.label, describe(exc))
            return False
        return True

    def _send_transaction_records(self, records: list[tuple[bytes, bytes]], event: RowEvent,
                                  sent: list[Sent]) -> None:
        """Queue Debezium's BEGIN/END records on the format's transaction topic."""
        topic = getattr(self.format, "transaction_topic", "")
        for key, value in records:
            if self._produce(topic, key, value, None, event):
                sent.append((topic, key, value, None, event))

    def _skip(self, event: RowEvent) -> None:
        """Leave out an event of an operation ``debezium.skipped_operations`` names
        (counted, and logged once per operation)."""
        assert self.context is not None
        self.context.metrics.record_failure(self.label, f"skipped_{event.action}")
        if event.action not in self._skip_logged:
            self._skip_logged.add(event.action)
            log.info("%s: leaving out %s events (debezium.skipped_operations)", self.label,
                     event.action)

    def _headers(self, event: RowEvent) -> Header:
        sequence, position = event.sequence, event.position
        if position is None:
            return None if sequence is None else [(SEQUENCE_HEADER, str(sequence))]
        if position is not self._position:  # shared by the rows of one source event
            self._position, self._position_bytes = position, _json_bytes(position)
        if sequence is None:
            return [(POSITION_HEADER, self._position_bytes)]
        return [(SEQUENCE_HEADER, str(sequence)), (POSITION_HEADER, self._position_bytes)]

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Header,
                 event: StreamEvent, partition: int = -1) -> bool:
        """Queue one message (to ``partition``, -1: the partitioner's choice), waiting
        while librdkafka's queue is full; False when it was refused at once
        (dead-lettered)."""
        assert self.producer is not None
        while True:
            try:
                self.producer.produce(topic, value, key, partition=partition,
                                      headers=headers)
                return True
            except BufferError:  # the queue is full: let deliveries drain it
                self.producer.poll(0.1)
            except KafkaException as exc:
                error = exc.args[0]
                if isinstance(error, KafkaError) and error.code() in REFUSED:
                    self._dead_letter(event, _refusal(topic, error, self._own_refusal(error)))
                    return False
                self._drain()
                raise SinkError(f"{self.label}: cannot queue a message for topic {topic!r}: "
                                f"{describe(exc)}") from exc

    def _own_refusal(self, error: KafkaError) -> str | None:
        """Why this producer refused a message at ``produce()``, before any broker saw it
        (librdkafka words it as the broker's "Message size too large"), or None."""
        if error.code() != KafkaError.MSG_SIZE_TOO_LARGE:
            return None
        limit = int((self.settings.config or {}).get("message.max.bytes",
                                                     PRODUCER_MESSAGE_MAX_BYTES))
        return (f"this producer refused it before sending: larger than its message.max.bytes, "
                f'{limit} bytes; raise config."message.max.bytes" of the sink, up to the '
                "topic's max.message.bytes")

    def _wait_for_reports(self, count: int) -> None:
        assert self.producer is not None
        timeout = self.settings.delivery_timeout + 10
        left = self.producer.flush(timeout)
        if left:
            self._drain()
            raise SinkError(f"{self.label}: {left} of {count} messages got no delivery report "
                            f"within {timeout:.0f}s; the batch is sent again")

    def _settle(self, sent: list[Sent]) -> None:
        """Act on the failed deliveries of this batch: a fatal producer error or any
        retryable failure raises (the whole batch is sent again); refusals for good are
        dead-lettered, after size refusals were retried alone."""
        fatal, self._fatal = self._fatal, None
        if fatal is not None and self.transactions is not None:
            raise self.transactions.fenced(fatal)
        if fatal is not None:
            self._reset()
            raise SinkError(
                f"{self.label}: the producer failed ({fatal.name()}: {fatal.str()})"
                + ("; grant this client IDEMPOTENT_WRITE/WRITE" if is_authorization(fatal)
                   else "; a new producer sends the batch again"),
                retryable=not is_authorization(fatal))
        failures, self._failures = list(self._failures), []
        retry = [err for err, _ in failures if err.code() not in REFUSED]
        if retry:
            raise SinkError(
                f"{self.label}: {len(retry)} of {len(sent)} messages were not acknowledged "
                f"({retry[0].name()}: {retry[0].str()}); the batch is sent again, so "
                "consumers may see some messages twice (meepo.sequence header)")
        too_large: list[int] = []
        for error, message in failures:
            index = _index_of(sent, message)
            if index is None:
                continue
            if error.code() in TOO_LARGE:
                too_large.append(index)
            else:
                self._dead_letter(sent[index][4], _refusal(sent[index][0], error))
        if too_large:
            self._resend_alone(sent, too_large)

    def _resend_alone(self, sent: list[Sent], refused: list[int]) -> None:
        """Send each message refused for its record batch's size again on its own, followed
        by every later message of the batch with the same topic and key (so the key's last
        message stays last in the log); dead-letter those still too large alone."""
        first: dict[tuple[str, bytes | None], int] = {}
        for index in sorted(refused):
            first.setdefault((sent[index][0], sent[index][1]), index)
        again = [index for index, (topic, key, *_rest) in enumerate(sent)
                 if index >= first.get((topic, key), len(sent))]
        assert self.producer is not None
        for index in again:
            topic, key, value, headers, event = sent[index]
            self.producer.produce(topic, value, key, headers=headers)
            self._wait_for_reports(1)
            failures, self._failures = self._failures, []
            for error, _message in failures:
                if error.code() not in REFUSED:
                    raise SinkError(f"{self.label}: sending a message alone failed "
                                    f"({error.name()}: {error.str()}); the batch is sent again")
                self._dead_letter(event, _refusal(topic, error))

    def _report(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append((error, message))

    def _error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
            log.error("%s: fatal producer error: %s: %s", self.label, error.name(), error.str())
        else:
            log.warning("%s: %s: %s", self.label, error.name(), error.str())

    def _dead_letter(self, event: StreamEvent, reason: str) -> None:
        assert self.context is not None
        self.context.dead_letter(event, self.label, reason)
        self.refused.append(event)

    def take_fatal(self) -> KafkaError | None:
        """The fatal producer error reported since the last call, if any."""
        fatal, self._fatal = self._fatal, None
        return fatal

    def dead_letters_sync(self) -> None:
        """Make the dead letters recorded so far durable."""
        assert self.context is not None
        self.context.dead_letters.sync()

    def _drain(self) -> None:
        """Wait for (or give up on) every message still queued, so that their reports do not
        land in the next batch."""
        if self.producer is not None:
            self.producer.flush(self.settings.delivery_timeout + 10)
        self._failures.clear()

    def _reset(self) -> None:
        """Replace a producer that hit a fatal error (it accepts nothing more)."""
        log.warning("%s: replacing the producer after a fatal error", self.label)
        self.producer = Producer(self.producer_config())
        self._failures.clear()

    def close(self) -> None:
        if self.transactions is not None and self.producer is not None:
            self.transactions.close()
        if self.producer is not None:
            left = self.producer.flush(self.settings.delivery_timeout)
            if left:
                log.warning("%s: %d messages still unacknowledged at close", self.label, left)
            self.producer = None


def _refusal(topic: str, error: KafkaError, why: str | None = None) -> str:
    why = why or REFUSED.get(error.code(), "")
    return f"Kafka refused the message for topic {topic!r}: {error.name()}: {error.str()}" + (
        f" ({why})" if why else "")


def _index_of(sent: list[Sent], message: Message) -> int | None:
    """Where in ``sent`` the message of a delivery report was queued."""
    wanted = (message.topic(), message.key(), message.value())
    for index, (topic, key, value, *_rest) in enumerate(sent):
        if (topic, key, value) == wanted:
            return index
    return None


def _json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, default=str, separators=(",", ":")).encode()
