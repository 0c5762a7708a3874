"""The message format a kafka source or sink is configured with, by name."""

from __future__ import annotations

from .debezium import DebeziumFormat
from .debezium_settings import DebeziumSettings
from .debezium_types import Modes
from .formats import Format, MeepoFormat


def make_format(name: str, server_name: str = "meepo", schemas: bool = True,
                debezium: DebeziumSettings | None = None) -> Format:
    """The format called ``name`` (validated by the caller); ``server_name`` is Debezium's
    logical server name, ``schemas`` its JSON converter's ``schemas.enable``, ``debezium``
    its value-mapping settings."""
    if name == "debezium":
        settings = debezium or DebeziumSettings()
        return DebeziumFormat(server_name, schemas, Modes(
            settings.decimal_handling_mode, settings.time_precision_mode,
            settings.binary_handling_mode, settings.bigint_unsigned_handling_mode),
            settings.provide_transaction_metadata, settings.heartbeat_interval_ms)
    return MeepoFormat()
