"""The ``debezium`` table of the ``kafka`` sink: Debezium's own connector settings, under
their Debezium names (dots as underscores) and with Debezium's defaults.

Values meepo does not implement yet are refused with the values it does, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from meepo_core import Options, OptionSpec

#: Debezium's operation letters for ``skipped.operations``.
OPERATIONS = ("c", "u", "d", "t")

TOPIC_PREFIX = OptionSpec(
    "topic_prefix", "string", None,
    "Debezium's `topic.prefix`: `source.name` and the topics' first part (none: topics as "
    "`topic` says).")
DECIMAL_HANDLING_MODE = OptionSpec(
    "decimal_handling_mode", "string", "precise",
    '`"precise"` (bytes of the unscaled value, scale in the schema; `VariableScaleDecimal` '
    'for `numeric` without precision), `"double"`, `"string"`.',
    choices=("precise", "double", "string"))
TIME_PRECISION_MODE = OptionSpec(
    "time_precision_mode", "string", "adaptive",
    '`"adaptive"` (milliseconds up to precision 3, microseconds above), '
    '`"adaptive_time_microseconds"` (every `time` in microseconds), `"connect"` (Kafka '
    "Connect's `Date`/`Time`/`Timestamp`, milliseconds). On MySQL `adaptive` is "
    'Debezium\'s MySQL default, `"adaptive_time_microseconds"` (the MySQL connector has no '
    "other adaptive mode).",
    choices=("adaptive", "adaptive_time_microseconds", "connect"))
BINARY_HANDLING_MODE = OptionSpec(
    "binary_handling_mode", "string", "bytes",
    '`"bytes"`, `"base64"`, `"base64-url-safe"`, `"hex"`.',
    choices=("bytes", "base64", "base64-url-safe", "hex"))
INTERVAL_HANDLING_MODE = OptionSpec(
    "interval_handling_mode", "string", "numeric",
    '`"numeric"` (microseconds, a month being 30.4375 days). `"string"` is not implemented '
    "yet.", choices=("numeric",))
BIGINT_UNSIGNED_HANDLING_MODE = OptionSpec(
    "bigint_unsigned_handling_mode", "string", "long",
    'MySQL\'s `BIGINT UNSIGNED`: `"long"` (an `int64` holding the value\'s 64 bits, so '
    '18446744073709551615 is -1, as Debezium writes it), `"precise"` (`Decimal` bytes, '
    "scale 0, precision 20). PostgreSQL has no unsigned types.", choices=("long", "precise"))
TOMBSTONES_ON_DELETE = OptionSpec("tombstones_on_delete", "boolean", True,
                                  "A tombstone after each delete.")
SKIPPED_OPERATIONS = OptionSpec(
    "skipped_operations", "string", "t",
    'Comma-separated `c`, `u`, `d`, `t`, or `"none"`: operations left out (each counted in '
    "the sink's metrics as `skipped_write`/`skipped_update`/`skipped_delete`, and logged "
    "once). meepo's events have no truncates, so `t` changes nothing.")
PROVIDE_TRANSACTION_METADATA = OptionSpec(
    "provide_transaction_metadata", "boolean", False,
    "`true`: a BEGIN record on `{topic_prefix}.transaction` before each transaction's first "
    "change, an END record with `event_count` and the counts per table after its last, and "
    "the `transaction` block (`id`, `total_order`, `data_collection_order`) in each change, "
    "as Debezium writes them. Transactions are told apart by the events' transaction id; "
    "one that spans several batches keeps its counts across them, and a batch sent again "
    "counts its events once.")
HEARTBEAT_INTERVAL_MS = OptionSpec(
    "heartbeat_interval_ms", "integer", 0,
    "Above 0: Debezium's heartbeat record (key `{\"serverName\": prefix}`, value "
    "`{\"ts_ms\": ...}`) on `__debezium-heartbeat.{topic_prefix}` at most once per interval, "
    "sent with the next batch, including the empty batches the runner delivers while the "
    "source is idle (so the interval is at least the source's idle heartbeat).", minimum=0)
#: The ``debezium = { ... }`` table of the ``kafka`` sink, with its keys.
DEBEZIUM = OptionSpec(
    "debezium", "table", {},
    '`format = "debezium"`: Debezium\'s own connector settings, under Debezium\'s names with '
    "`_` for `.` and with Debezium's defaults; an unknown key, or a value meepo does not "
    "implement, is refused naming the key and the valid values.",
    options=(TOPIC_PREFIX, DECIMAL_HANDLING_MODE, TIME_PRECISION_MODE, BINARY_HANDLING_MODE,
             INTERVAL_HANDLING_MODE, BIGINT_UNSIGNED_HANDLING_MODE, TOMBSTONES_ON_DELETE,
             SKIPPED_OPERATIONS, PROVIDE_TRANSACTION_METADATA, HEARTBEAT_INTERVAL_MS))


@dataclass(frozen=True)
class DebeziumSettings:
    """Debezium's settings as the format uses them (see the README's table)."""

    topic_prefix: str | None = None
    decimal_handling_mode: str = "precise"
    time_precision_mode: str = "adaptive"
    binary_handling_mode: str = "bytes"
    interval_handling_mode: str = "numeric"
    bigint_unsigned_handling_mode: str = "long"
    tombstones_on_delete: bool = True
    skipped_operations: frozenset[str] = frozenset({"t"})
    provide_transaction_metadata: bool = False
    heartbeat_interval_ms: int = 0

    @classmethod
    def from_options(cls, parent: Options) -> DebeziumSettings:
        """The ``debezium`` table of ``parent`` (Debezium's defaults when absent)."""
        options = parent.sub(DEBEZIUM)
        prefix = options.string(TOPIC_PREFIX)
        skipped = options.string(SKIPPED_OPERATIONS)
        letters = {part.strip() for part in skipped.split(",") if part.strip()}
        if letters == {"none"}:
            letters = set()
        wrong = sorted(letters - set(OPERATIONS))
        if wrong:
            raise options.error("skipped_operations",
                                f"{wrong[0]!r} is not an operation; write a comma-separated "
                                "list of c, u, d, t, or \"none\"")
        settings = cls(
            topic_prefix=prefix,
            decimal_handling_mode=options.choice(DECIMAL_HANDLING_MODE),
            time_precision_mode=options.choice(TIME_PRECISION_MODE),
            binary_handling_mode=options.choice(BINARY_HANDLING_MODE),
            interval_handling_mode=options.choice(INTERVAL_HANDLING_MODE),
            bigint_unsigned_handling_mode=options.choice(BIGINT_UNSIGNED_HANDLING_MODE),
            tombstones_on_delete=options.boolean(TOMBSTONES_ON_DELETE),
            skipped_operations=frozenset(letters),
            provide_transaction_metadata=options.boolean(PROVIDE_TRANSACTION_METADATA),
            heartbeat_interval_ms=options.integer(HEARTBEAT_INTERVAL_MS),
        )
        options.done()
        return settings
