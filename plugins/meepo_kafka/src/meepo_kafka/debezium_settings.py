"""The ``debezium`` table of the ``kafka`` sink: Debezium's own connector settings, under
their Debezium names (dots as underscores) and with Debezium's defaults.

Values meepo does not implement yet are refused with the values it does, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from meepo_core import Options

#: Debezium's operation letters for ``skipped.operations``.
OPERATIONS = ("c", "u", "d", "t")


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
        options = parent.sub("debezium")
        prefix = options.string("topic_prefix", None)
        skipped = options.string("skipped_operations", "t")
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
            decimal_handling_mode=options.choice("decimal_handling_mode",
                                                 ("precise", "double", "string"), "precise"),
            time_precision_mode=options.choice(
                "time_precision_mode", ("adaptive", "adaptive_time_microseconds", "connect"),
                "adaptive"),
            binary_handling_mode=options.choice(
                "binary_handling_mode", ("bytes", "base64", "base64-url-safe", "hex"),
                "bytes"),
            interval_handling_mode=options.choice("interval_handling_mode", ("numeric",),
                                                  "numeric"),
            bigint_unsigned_handling_mode=options.choice(
                "bigint_unsigned_handling_mode", ("long", "precise"), "long"),
            tombstones_on_delete=options.boolean("tombstones_on_delete", True),
            skipped_operations=frozenset(letters),
            provide_transaction_metadata=options.boolean("provide_transaction_metadata",
                                                         False),
            heartbeat_interval_ms=options.integer("heartbeat_interval_ms", 0, minimum=0),
        )
        options.done()
        return settings
