"""Option parsing shared by the ``kafka`` sink and source, validated without I/O.

``bootstrap_servers`` is checked for shape (``host:port`` items); the ``config`` table is
passed to librdkafka after meepo rejects the keys it owns and librdkafka itself rejects
unknown keys and bad values (checked on a client that has no brokers, so nothing connects).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer

from meepo_core import REQUIRED, Computed, ConfigError, Options, OptionSpec, describe_error

from .debezium_settings import DEBEZIUM, DebeziumSettings

#: librdkafka's own log lines go here (instead of stderr), at their syslog level.
LIBRDKAFKA_LOG = logging.getLogger("meepo.kafka.librdkafka")

#: Seconds to wait for the cluster's metadata before calling it unreachable.
CONNECT_TIMEOUT = 10.0

#: ``host:port``, ``[ipv6]:port`` or ``host``, with an optional ``PLAINTEXT://``-style prefix.
_SERVER = re.compile(
    r"^(?:[A-Za-z_]+://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"(?::(?P<port>\d{1,5}))?$"
)
#: Kafka's legal topic names: up to 249 of these characters, and not "." or "..".
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


BOOTSTRAP_SERVERS = OptionSpec("bootstrap_servers", "array of strings", REQUIRED,
                               '`"host:port,host:port"` (or an array of them).')


def bootstrap_option(options: Options) -> str:
    """``bootstrap_servers``: a ``"host:port,host:port"`` string or an array of them,
    returned as librdkafka's comma-separated string. A malformed item is a
    :class:`ConfigError` naming the key."""
    items = [part.strip() for value in options.string_list(BOOTSTRAP_SERVERS)
             for part in value.split(",")]
    if not items or not all(items):
        raise options.error("bootstrap_servers", 'must list brokers as "host:port,host:port"')
    for item in items:
        match = _SERVER.match(item)
        port = match["port"] if match else None
        if match is None or (port is not None and not 0 < int(port) < 65536):
            raise options.error(
                "bootstrap_servers",
                f"{item!r} is not a broker address; write host:port, e.g. kafka1:9092",
            )
    return ",".join(items)


def topic_problem(name: str) -> str | None:
    """Why ``name`` is not a legal Kafka topic name, or None."""
    if name in (".", "..") or not _TOPIC.match(name):
        return (f"{name!r} is not a legal Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -, "
                "not '.' or '..')")
    return None


@dataclass(frozen=True)
class Owned:
    """A librdkafka key that meepo sets itself: ``allowed`` values may still be given (None:
    the key may not be given at all); ``fix`` says what to write instead."""

    allowed: frozenset[str] | None
    fix: str


def librdkafka_config(options: Options, owned: Mapping[str, Owned],
                      role: str, spec: OptionSpec) -> dict[str, Any]:
    """The ``config`` table (declared by ``spec``), for librdkafka's ``role`` client
    (``"producer"`` or ``"consumer"``): scalar values only, none of the ``owned`` keys
    except their allowed values, and every key and value accepted by librdkafka."""
    raw = options.table(spec)
    config: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"config.{key}"
        if not isinstance(value, str | int | float):  # bool is an int
            raise options.error(path, "must be a string, number or boolean")
        rule = owned.get(key)
        if rule is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if rule.allowed is None or text not in rule.allowed:
                raise options.error(path, f"is set by meepo; {rule.fix}")
        config[key] = str(value).lower() if isinstance(value, bool) else value
    _validate_with_librdkafka(options, config, role)
    return config


def _validate_with_librdkafka(options: Options, config: dict[str, Any], role: str) -> None:
    """Build a client with no brokers (nothing connects) so librdkafka checks every key;
    when it refuses, find the key by trying each alone (its message may name an alias)."""
    problem = _refusal(config, role)
    if problem is None:
        return
    culprit = next((key for key in config if _refusal({key: config[key]}, role)), None)
    raise ConfigError(options.key_path(f"config.{culprit}" if culprit else "config"),
                      f"librdkafka refused it: {problem}")


def _refusal(config: Mapping[str, Any], role: str) -> str | None:
    probe = {**config, "logger": _SILENT}
    try:
        if role == "consumer":
            Consumer({**probe, "group.id": "meepo-config-check"}).close()
        else:
            Producer(probe)
    except KafkaException as exc:
        return str(exc.args[0].str() if exc.args else exc)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


class _Silent(logging.Logger):
    def handle(self, record: logging.LogRecord) -> None:
        """Drop librdkafka's warnings about the probe client having no brokers."""


_SILENT = _Silent("meepo.kafka.probe")


describe = describe_error  # the name cluster, joining, kafka_source and kafka_sink use


@describe_error.register
def describe_kafka_error(exc: KafkaException) -> str:
    """One line for a librdkafka error."""
    error = exc.args[0] if exc.args else None
    if error is None:
        return describe_error.dispatch(Exception)(exc)
    return f"{error.name()}: {error.str()}" if hasattr(error, "name") else str(error)


def base_config(bootstrap: str) -> dict[str, Any]:
    """What every meepo client sets: the brokers, and librdkafka's logs into Python's."""
    return {"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG}


#: Prefixes of the ``config`` keys that concern reaching the cluster (security, sockets),
#: which the admin client of ``meepo check`` takes from a sink's or source's ``config``.
_CONNECTION_KEYS = ("security.", "sasl.", "ssl.", "socket.", "broker.", "client.", "api.version",
                    "enable.ssl", "enable.sasl", "metadata.", "reconnect.", "connections.",
                    "resolve.", "https.", "topic.metadata.")


def admin_config(bootstrap: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """An admin client's settings: the connection and security keys of ``config``."""
    return {**base_config(bootstrap),
            **{k: v for k, v in (config or {}).items() if k.startswith(_CONNECTION_KEYS)}}


def unknown_field_error(options: Options, key: str, template: str,
                        fields: tuple[str, ...]) -> ConfigError | None:
    """A :class:`ConfigError` when ``template`` names a field other than ``fields``."""
    sample = {name: "x" for name in fields}
    try:
        template.format(**sample)
    except KeyError as exc:
        return options.error(key, f"unknown field {{{exc.args[0]}}} in {template!r}; "
                                  f"available: {', '.join('{' + f + '}' for f in fields)}")
    except (IndexError, ValueError) as exc:
        return options.error(key, f"{template!r} is not a valid template ({exc}); use "
                                  f"{', '.join('{' + f + '}' for f in fields)}")
    return None


#: Producer keys meepo owns: the guarantees (idempotence, acks) and its own callbacks.
PRODUCER_OWNED = {
    "bootstrap.servers": Owned(None, "use bootstrap_servers"),
    "enable.idempotence": Owned(frozenset({"true"}),
                                "the kafka sink always uses the idempotent producer"),
    "acks": Owned(frozenset({"all", "-1"}), "the kafka sink always waits for acks=all"),
    "request.required.acks": Owned(frozenset({"all", "-1"}),
                                   "the kafka sink always waits for acks=all"),
    "message.timeout.ms": Owned(None, "use delivery_timeout (seconds)"),
    "delivery.timeout.ms": Owned(None, "use delivery_timeout (seconds)"),
    "transactional.id": Owned(None, "set exactly_once = true (and transactional_id)"),
    "delivery.report.only.error": Owned(None, "the kafka sink reads every delivery report"),
    "dr_msg_cb": Owned(None, "the kafka sink handles delivery reports"),
    "dr_cb": Owned(None, "the kafka sink handles delivery reports"),
    "on_delivery": Owned(None, "the kafka sink handles delivery reports"),
    "error_cb": Owned(None, "errors are logged by meepo"),
    "logger": Owned(None, "librdkafka logs go to the meepo.kafka.librdkafka logger"),
}

#: Consumer keys meepo owns: the group, offsets (committed only after checkpoints) and the
#: eager rebalance protocol its revoke handling relies on.
CONSUMER_OWNED = {
    "bootstrap.servers": Owned(None, "use bootstrap_servers"),
    "group.id": Owned(None, "use group"),
    "enable.auto.commit": Owned(frozenset({"false"}),
                                "offsets are committed only after meepo's checkpoints"),
    "enable.auto.offset.store": Owned(frozenset({"false"}),
                                      "offsets are stored only after meepo's checkpoints"),
    "auto.offset.reset": Owned(None, 'use start = "earliest" or "latest"'),
    "partition.assignment.strategy": Owned(
        frozenset({"range", "roundrobin", "range,roundrobin", "roundrobin,range"}),
        "use range or roundrobin: meepo's revoke handling needs the eager protocol"),
    "group.protocol": Owned(frozenset({"classic"}),
                            "meepo's revoke handling needs the classic protocol"),
    "on_commit": Owned(None, "commits are handled by meepo"),
    "error_cb": Owned(None, "errors are logged by meepo"),
    "logger": Owned(None, "librdkafka logs go to the meepo.kafka.librdkafka logger"),
}

TOPIC_FIELDS = ("schema", "table")

# -- the sink's options -------------------------------------------------------------------
TOPIC = OptionSpec(
    "topic", "string", "{schema}.{table}",
    "The topic of each table; fields `{schema}` and `{table}`. Characters Kafka does not "
    "allow in topic names become `_` (as in Debezium; logged once per table).")
TOPIC_PREFIX = OptionSpec(
    "topic_prefix", "string",
    Computed('`""` (`format = "debezium"`: `debezium.topic_prefix` and a dot)'),
    'Put before `topic`, e.g. `"cdc."`.')
TOPICS = OptionSpec("topics", "table", {},
                    'Per table, the exact topic: `{ "shop.orders" = "orders-v2" }`.')
# the choices are formats.FORMATS (not imported here: that module loads the formats)
SINK_FORMAT = OptionSpec("format", "string", "meepo",
                         '`"meepo"` or `"debezium"` (see *Formats*).',
                         choices=("meepo", "debezium"))
TOMBSTONES = OptionSpec(
    "tombstones", "boolean",
    Computed('`false` (`format = "debezium"`: `debezium.tombstones_on_delete`, on)'),
    "After each delete, a message with the same key and a null value, so a compacted topic "
    "(`cleanup.policy=compact`) forgets the row.")
SERVER_NAME = OptionSpec("server_name", "string",
                         Computed("`debezium.topic_prefix`, else the pipeline name"),
                         "Debezium's logical server name (`source.name`).")
SCHEMAS = OptionSpec(
    "schemas", "boolean", True,
    '`format = "debezium"`: keys, values and headers as Kafka Connect\'s `JsonConverter` '
    "writes them with `schemas.enable=true` (its default: `{\"schema\": ..., \"payload\": "
    "...}`); `false` gives its `schemas.enable=false` output (the payload alone).")
DELIVERY_TIMEOUT = OptionSpec(
    "delivery_timeout", "number", 30.0,
    "Seconds librdkafka tries to deliver a message (`message.timeout.ms`) before the batch "
    "fails and is retried.", minimum=1)
EXACTLY_ONCE = OptionSpec(
    "exactly_once", "boolean", False,
    "A transactional producer: each batch and the pipeline's position are one Kafka "
    'transaction; see "Exactly-once" below.')
TRANSACTIONAL_ID = OptionSpec(
    "transactional_id", "string", Computed('`"meepo.<pipeline>"`'),
    "With `exactly_once`: the producer's `transactional.id`. One running instance per id: a "
    "second one fences the first.")
POSITIONS_TOPIC = OptionSpec(
    "positions_topic", "string", "meepo.positions",
    "With `exactly_once`: the compacted topic (created if missing, one partition) holding "
    "positions, keyed by pipeline.")
PRODUCER_CONFIG = OptionSpec(
    "config", "table", {},
    "librdkafka settings passed through: SASL, TLS, compression, linger, batch sizes... "
    'e.g. `{ "security.protocol" = "SASL_SSL", "sasl.mechanism" = "PLAIN", '
    '"sasl.username" = "${KAFKA_USER}", "sasl.password" = "${KAFKA_PASSWORD}", '
    '"compression.type" = "zstd" }`. Unknown keys and bad values are refused at config '
    "time, naming the key; so are the keys meepo owns (below). `compression.type` defaults "
    "to `lz4` (librdkafka's own default is `none`): Debezium's schema part makes each "
    "message several times larger and compresses well, and every Kafka client "
    "decompresses. A topic's `max.message.bytes` limits the compressed batch; "
    '`"none"` turns it off.')
#: The ``kafka`` sink's options.
SINK_OPTIONS = (BOOTSTRAP_SERVERS, TOPIC, TOPIC_PREFIX, TOPICS, SINK_FORMAT, TOMBSTONES,
                SERVER_NAME, SCHEMAS, DEBEZIUM, DELIVERY_TIMEOUT, EXACTLY_ONCE,
                TRANSACTIONAL_ID, POSITIONS_TOPIC, PRODUCER_CONFIG)

# -- the source's options -----------------------------------------------------------------
GROUP = OptionSpec("group", "string", REQUIRED,
                   "The consumer group; workers with the same group share the partitions.")
SOURCE_TOPICS = OptionSpec(
    "topics", "array of strings", REQUIRED,
    'Topic names, and regexes starting with `^` (`"^shop\\\\..*"`): new matching topics are '
    "picked up.")
SOURCE_FORMAT = OptionSpec(
    "format", "string", "meepo",
    '`"meepo"`, or `"debezium"` to read Debezium\'s envelope, with or without the JSON '
    "converter's schema.", choices=("meepo", "debezium"))
START = OptionSpec(
    "start", "string", "earliest",
    'Where a group without committed offsets starts: `"earliest"` (everything kept) or '
    '`"latest"` (new messages only).', choices=("earliest", "latest"))
REVOKE_TIMEOUT = OptionSpec(
    "revoke_timeout", "number", 60.0,
    "Seconds a worker that must give partitions away waits for its sinks to apply what it "
    "already read from them (below). Keep it under librdkafka's `max.poll.interval.ms` "
    "(300 s).", minimum=0)
CONSUMER_CONFIG = OptionSpec(
    "config", "table", {},
    "librdkafka consumer settings passed through (security, `session.timeout.ms`, "
    "`max.poll.interval.ms`, `isolation.level`, fetch sizes...). Refused: `group.id`, "
    "`enable.auto.commit`, `enable.auto.offset.store`, `auto.offset.reset` (use `start`), a "
    "non-eager `partition.assignment.strategy` (`range` and `roundrobin` are accepted) and "
    "`group.protocol` other than `classic`.")
#: The ``kafka`` source's options.
SOURCE_OPTIONS = (BOOTSTRAP_SERVERS, GROUP, SOURCE_TOPICS, SOURCE_FORMAT, START,
                  REVOKE_TIMEOUT, CONSUMER_CONFIG)


@dataclass(frozen=True)
class SinkSettings:
    """The ``kafka`` sink's options (see the README's table)."""

    bootstrap_servers: str
    topic: str = "{schema}.{table}"
    topic_prefix: str = ""
    topics: Mapping[str, str] | None = None
    format: str = "meepo"
    tombstones: bool = False
    server_name: str | None = None
    delivery_timeout: float = 30.0
    config: Mapping[str, Any] | None = None
    label: str = "kafka"
    schemas: bool = True
    debezium: DebeziumSettings = field(default_factory=DebeziumSettings)
    bootstrap_key: str = "bootstrap_servers"
    #: Exactly-once: a transactional producer; see :mod:`meepo_kafka.kafka_transactions`.
    exactly_once: bool = False
    transactional_id: str | None = None
    positions_topic: str = "meepo.positions"

    @classmethod
    def from_options(cls, options: Options) -> SinkSettings:
        bootstrap = bootstrap_option(options)
        topic = options.string(TOPIC)
        error = unknown_field_error(options, "topic", topic, TOPIC_FIELDS)
        if error is not None:
            raise error
        format_name = options.choice(SINK_FORMAT)
        debezium = DebeziumSettings.from_options(options)
        if "debezium" in options.data and format_name != "debezium":
            raise options.error("debezium", 'applies to format = "debezium" only')
        default_prefix = (f"{debezium.topic_prefix}." if debezium.topic_prefix
                          and format_name == "debezium" else "")
        prefix = options.string(TOPIC_PREFIX, default_prefix)
        sample = prefix + topic.format(schema="a", table="b")
        if topic_problem(sample) is not None:
            raise options.error("topic", f"{prefix + topic!r} makes topic names Kafka does not "
                                         "allow (a-z A-Z 0-9 . _ - only, at most 249)")
        topics = options.table(TOPICS)
        for table, name in topics.items():
            if not isinstance(name, str) or topic_problem(name) is not None:
                raise options.error(f"topics.{table}", topic_problem(str(name))
                                    or "must be a topic name")
        return cls(
            bootstrap_servers=bootstrap,
            topic=topic,
            topic_prefix=prefix,
            topics=dict(topics),
            format=format_name,
            tombstones=options.boolean(TOMBSTONES, format_name == "debezium"
                                       and debezium.tombstones_on_delete),
            server_name=options.string(SERVER_NAME, debezium.topic_prefix),
            delivery_timeout=options.number(DELIVERY_TIMEOUT),
            config=librdkafka_config(options, PRODUCER_OWNED, "producer", PRODUCER_CONFIG),
            label=f"{options.path.rsplit('.', 1)[-1] or 'sink'} kafka",
            bootstrap_key=options.key_path("bootstrap_servers"),
            exactly_once=options.boolean(EXACTLY_ONCE),
            transactional_id=options.string(TRANSACTIONAL_ID, None),
            positions_topic=options.string(POSITIONS_TOPIC),
            schemas=options.boolean(SCHEMAS),
            debezium=debezium,
        )


@dataclass(frozen=True)
class SourceSettings:
    """The ``kafka`` source's options (see the README's table)."""

    bootstrap_servers: str
    group: str
    topics: tuple[str, ...]
    format: str = "meepo"
    start: str = "earliest"
    revoke_timeout: float = 60.0
    config: Mapping[str, Any] | None = None
    bootstrap_key: str = "bootstrap_servers"

    @classmethod
    def from_options(cls, options: Options) -> SourceSettings:
        bootstrap = bootstrap_option(options)
        group = options.string(GROUP)
        if not group.strip():
            raise options.error("group", "must name the consumer group, e.g. \"search\"")
        topics = options.string_list(SOURCE_TOPICS)
        if not topics:
            raise options.error("topics", 'must list topic names or "^regex" patterns')
        for index, topic in enumerate(topics):
            if topic.startswith("^"):
                try:
                    re.compile(topic)
                except re.error as exc:
                    raise options.error(f"topics[{index}]", f"bad regex: {exc}") from None
            elif topic_problem(topic) is not None:
                raise options.error(f"topics[{index}]", str(topic_problem(topic)) +
                                    '; start a regex with "^"')
        return cls(
            bootstrap_servers=bootstrap,
            group=group,
            topics=tuple(topics),
            format=options.choice(SOURCE_FORMAT),
            start=options.choice(START),
            revoke_timeout=options.number(REVOKE_TIMEOUT),
            config=librdkafka_config(options, CONSUMER_OWNED, "consumer", CONSUMER_CONFIG),
            bootstrap_key=options.key_path("bootstrap_servers"),
        )
