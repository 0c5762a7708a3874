"""The ``kafka`` sink's messages for a schema change, in each format.

* ``meepo``: one message on the table's topic, the value
  :func:`~meepo_core.schema_changes.schema_change_to_dict`'s JSON (``"action": "schema"``),
  the key ``{"table": "schema.table"}``, the ``meepo.sequence`` header.
* ``debezium``: what Debezium's connectors write (:mod:`meepo_kafka.debezium_schema_changes`):
  for a MySQL/MariaDB change the schema change record on the schema change topic (the topic
  prefix, ``server_name``), partition 0, with Debezium's context headers; for a
  ``TRUNCATE`` the ``"t"`` change event on the table's topic unless
  ``skipped_operations`` names ``t`` (Debezium's default; counted ``skipped_truncate``);
  for changes of other sources nothing, as Debezium's PostgreSQL connector (no schema
  change topic: the next change events carry the new schema).

meepo's ``meepo.sequence`` and ``meepo.position`` headers follow Debezium's, as on rows.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from meepo_core import SchemaChange, schema_change_to_dict

from .config import SinkSettings
from .debezium_schema_changes import (
    context_headers,
    display_widths,
    is_binlog_change,
    schema_change_record,
    truncate_record,
)
from .formats import POSITION_HEADER, SEQUENCE_HEADER, Format
from .topics import TopicRouter

Header = list[tuple[str, str | bytes | None]]
#: topic, key, value, headers, partition (-1: the partitioner's choice)
Message = tuple[str, bytes | None, bytes | None, Header | None, int]


class SchemaChangeMessages:
    """Makes the messages of schema changes for one sink (see the module docstring)."""

    def __init__(self, settings: SinkSettings, message_format: Format,
                 router: TopicRouter) -> None:
        self.settings = settings
        self.format = message_format
        self.router = router
        self.debezium = settings.format == "debezium"
        self.server_name = str(getattr(message_format, "server_name", "") or "")
        self.version = str(getattr(message_format, "version", "") or "")
        self.schemas = bool(getattr(message_format, "schemas", settings.schemas))
        run_id = str(getattr(message_format, "run_id", "") or uuid.uuid4())
        self._context = context_headers(self.server_name, run_id, self.schemas)
        #: Per table, the integer columns' lengths in its last record (Debezium's parser
        #: keeps a length a statement wrote, or did not write, until a statement changes it)
        self._widths: dict[tuple[str, str], dict[str, int | None]] = {}

    def messages(self, change: SchemaChange) -> tuple[list[Message], str | None]:
        """The messages of ``change``, and the failure counter to add one to when the
        format writes none for it on purpose (None: nothing to count)."""
        if not self.debezium:
            topic = self.router.topic(change.schema, change.table)
            key = orjson.dumps({"table": change.qualified_table})
            value = _json_bytes(schema_change_to_dict(change))
            headers: Header | None = (None if change.sequence is None
                                      else [(SEQUENCE_HEADER, str(change.sequence))])
            return [(topic, key, value, headers, -1)], None
        if not is_binlog_change(change):
            return [], None  # as Debezium's PostgreSQL connector: no schema change topic
        if change.kind == "truncate":
            if "t" in self.settings.debezium.skipped_operations:
                return [], "skipped_truncate"
            codec = self._table_codec(change)
            truncate = truncate_record(
                change, self.server_name, version=self.version, schemas=self.schemas,
                envelope=getattr(codec, "value_schema", None) if codec is not None else None)
            assert truncate is not None
            return [(self.router.topic(change.schema, change.table), None, truncate,
                     self._meepo_headers(change) or None, -1)], None
        table = (change.schema, change.table)
        earlier = self._widths.pop(change.renamed_from or table, None)
        record = schema_change_record(change, self.server_name, version=self.version,
                                      schemas=self.schemas, earlier=earlier)
        assert record is not None
        if change.after is not None:
            self._widths[table] = display_widths(change, earlier)
        else:
            self._widths.pop(table, None)
        return [(self.server_name, record[0], record[1],
                 [*self._context, *self._meepo_headers(change)], 0)], None

    def _table_codec(self, change: SchemaChange) -> Any:
        """The codec the format made for the rows of ``change``'s table (the newest), so a
        truncate event has their shape; None when its rows carry no definitions. Looked up
        only for a truncate: the rows' hot path stays as it is."""
        cache = getattr(self.format, "codecs", None)
        found = None
        for definition, codec in getattr(cache, "_codecs", {}).values():
            if definition.table == change.table \
                    and change.schema in (definition.database, definition.schema):
                found = codec
        return found

    def _meepo_headers(self, change: SchemaChange) -> Header:
        headers: Header = []
        if change.sequence is not None:
            headers.append((SEQUENCE_HEADER, str(change.sequence)))
        if change.position is not None:
            headers.append((POSITION_HEADER, _json_bytes(change.position)))
        return headers


def _json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        import json

        return json.dumps(value, default=str, separators=(",", ":")).encode()
