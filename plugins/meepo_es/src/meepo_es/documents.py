"""Turning row events into bulk operations: document ids, documents and value conversion.

Conversion is predictable and documented in the README:

* ``Decimal`` -> string (``"12.50"``, scale kept) or, with ``decimal = "float"``, a float;
* ``datetime`` -> ISO 8601 with its offset; naive values get the sink's ``timezone``;
* ``date`` / ``time`` -> ISO 8601; ``timedelta`` (MySQL ``TIME``) -> ``"[-]HH:MM:SS[.ffffff]"``;
* ``bytes`` -> base64; sets -> sorted lists; tuples -> lists; ``UUID`` -> string;
* non-finite floats and unknown types raise :class:`ConversionError` (the event is
  dead-lettered, never silently altered).
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from meepo_core import UNCHANGED, RowEvent

from .config import MAX_VERSION, SinkSettings, TableRule


class ConversionError(ValueError):
    """A value cannot become JSON for Elasticsearch; the event goes to the dead letters."""


class SequenceError(ValueError):
    """An event cannot be versioned (no sequence, or out of the int64 range)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One bulk action. ``source`` is the document for ``index``; ``version`` is the
    external version (``None`` when versioning is off).

    ``unchanged`` names the fields of an ``index`` whose values the source did not send
    (:data:`~meepo_core.UNCHANGED`): they are absent from ``source`` and must be copied from
    the stored document ``fill_from`` (an id in the same index) before sending; see
    :mod:`meepo_es.unchanged`."""

    action: Literal["index", "delete"]
    index: str
    doc_id: str
    version: int | None
    source: dict[str, Any] | None
    event: RowEvent
    unchanged: tuple[str, ...] = ()
    fill_from: str | None = None


def convert_value(value: Any, settings: SinkSettings, column: str = "?") -> Any:
    """``value`` as JSON-ready data (see the module docstring for the rules)."""
    if type(value) in _PLAIN or value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConversionError(f"column {column!r}: {value} cannot be indexed (not finite)")
        return value
    if isinstance(value, Decimal):
        if settings.decimal == "float":
            result = float(value)
            if not math.isfinite(result):
                raise ConversionError(f"column {column!r}: {value} cannot be a float")
            return result
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=settings.timezone)
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _format_timedelta(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted((convert_value(item, settings, column) for item in value), key=repr)
    if isinstance(value, list | tuple):
        return [convert_value(item, settings, column) for item in value]
    if isinstance(value, Mapping):
        return {str(k): convert_value(v, settings, f"{column}.{k}") for k, v in value.items()}
    raise ConversionError(f"column {column!r}: cannot index a {type(value).__name__} value")


_PLAIN = frozenset({str, int, bool})


def _format_timedelta(value: timedelta) -> str:
    micros = round(value.total_seconds() * 1_000_000)
    sign = "-" if micros < 0 else ""
    seconds, micros = divmod(abs(micros), 1_000_000)
    hours, rest = divmod(seconds, 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{micros:06d}" if micros else text


class DocumentBuilder:
    """Maps events to :class:`Operation` s for one sink's settings.

    The id of a document is its pk: a scalar as text, a composite pk's values joined by
    ``id_separator`` (default ``|``). ``redirect`` maps an index/alias name to the
    concrete index to write instead (the backfill writes ``orders_v2`` for ``orders``).
    """

    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        self._redirect: dict[str, str] = {}
        self._pk_columns: dict[str, tuple[str, ...]] = {}
        self._targets: dict[tuple[str, str, str | None], tuple[str, TableRule]] = {}

    @property
    def redirect(self) -> dict[str, str]:
        return self._redirect

    @redirect.setter
    def redirect(self, mapping: dict[str, str]) -> None:
        self._redirect = dict(mapping)
        self._targets.clear()

    def index_for(self, event: RowEvent) -> str:
        """The event's index: a route transform's ``destination``, else the table's."""
        name = event.destination or self.settings.index_name(event.schema, event.table)
        return self.redirect.get(name, name)

    def _target(self, event: RowEvent) -> tuple[str, TableRule]:
        """(index, rule) of the event's table and destination, cached until ``redirect``
        is set."""
        key = (event.schema, event.table, event.destination)
        found = self._targets.get(key)
        if found is None:
            found = (self.index_for(event), self.settings.rule(event.schema, event.table))
            self._targets[key] = found
        return found

    def doc_id(self, pk: Any) -> str:
        parts = pk if isinstance(pk, tuple) else (pk,)
        return self.settings.id_separator.join(self._id_part(part) for part in parts)

    def _id_part(self, value: Any) -> str:
        if value is None:
            return "null"
        converted = convert_value(value, self.settings, "pk")
        return converted if isinstance(converted, str) else str(converted)

    def document(self, rule: TableRule, image: Mapping[str, Any]) -> dict[str, Any]:
        """The after image shaped by include/exclude/rename, values converted; columns
        holding :data:`~meepo_core.UNCHANGED` are left out (see :meth:`unchanged_fields`)."""
        return {
            rule.rename.get(column, column): convert_value(image[column], self.settings, column)
            for column in document_columns(rule, image) if image[column] is not UNCHANGED
        }

    def unchanged_fields(self, rule: TableRule, image: Mapping[str, Any]) -> tuple[str, ...]:
        """The document fields whose columns hold :data:`~meepo_core.UNCHANGED`."""
        return tuple(rule.rename.get(column, column)
                     for column in document_columns(rule, image) if image[column] is UNCHANGED)

    def version(self, event: RowEvent) -> int | None:
        if not self.settings.versioning:
            return None
        sequence = event.sequence
        if sequence is None:
            raise SequenceError(
                f"event {event.name} pk={event.pk!r} has no sequence, so it cannot be "
                "versioned; this source does not provide sequences: set versioning = \"off\" "
                "on this sink (replays may then briefly show older documents)"
            )
        if not 0 <= sequence <= MAX_VERSION:
            raise SequenceError(
                f"event {event.name} pk={event.pk!r} has sequence {sequence}, outside the "
                f"external version range 0..{MAX_VERSION}"
            )
        return sequence

    def operations(self, event: RowEvent) -> list[Operation]:
        """The bulk actions for one event (two for an update that changes the pk).

        Raises :class:`ConversionError` for a value that cannot be indexed and
        :class:`SequenceError` when versioning is impossible."""
        version = self.version(event)
        index, rule = self._target(event)
        if event.action == "delete":
            return [Operation("delete", index, self.doc_id(event.pk), version, None, event)]
        assert event.after is not None, f"{event.action} event without an after image"
        ops: list[Operation] = []
        old_id = new_id = self.doc_id(event.pk)
        if event.action == "update" and event.before is not None:
            old_pk, new_pk = self._pks_of_update(event, rule)
            old_id, new_id = self.doc_id(old_pk), self.doc_id(new_pk)
            if old_id != new_id:
                ops.append(Operation("delete", index, old_id, version, None, event))
        document = self.document(rule, event.after)
        unchanged = self.unchanged_fields(rule, event.after)
        ops.append(Operation("index", index, new_id, version, document, event, unchanged,
                             old_id if unchanged else None))
        return ops

    def _pks_of_update(self, event: RowEvent, rule: TableRule) -> tuple[Any, Any]:
        """(pk before, pk after) of an update, from the pk columns of the table."""
        assert event.before is not None and event.after is not None
        columns = rule.pk_columns or event.pk_columns or self._infer_pk_columns(event)
        if not columns or any(c not in event.before or c not in event.after for c in columns):
            return event.pk, event.pk
        before = tuple(event.before[c] for c in columns)
        after = tuple(event.after[c] for c in columns)
        if len(columns) == 1 and not isinstance(event.pk, tuple):
            return before[0], after[0]
        return before, after

    def _infer_pk_columns(self, event: RowEvent) -> tuple[str, ...] | None:
        """Which columns hold the pk, for sources that do not say (``event.pk_columns``),
        learned by matching ``event.pk`` against the images.

        A match is remembered per table once it is unambiguous (each pk value found in
        exactly one column); set ``pk_columns`` in config to skip the guessing."""
        key = event.qualified_table
        known = self._pk_columns.get(key)
        if known is not None:
            return known
        values = event.pk if isinstance(event.pk, tuple) else (event.pk,)
        for image in (event.after, event.before):
            if not image:
                continue
            chosen: list[str] = []
            unique = True
            for value in values:
                matches = [c for c in image if c not in chosen and _same(image[c], value)]
                if not matches:
                    break
                unique = unique and len(matches) == 1
                chosen.append(matches[0])
            else:
                if unique:
                    self._pk_columns[key] = tuple(chosen)
                return tuple(chosen)
        return None


def document_columns(rule: TableRule, image: Mapping[str, Any]) -> list[str]:
    """The columns of ``image`` that become fields, by the rule's include/exclude."""
    if rule.include is not None:
        return [c for c in rule.include if c in image]
    return [c for c in image if c not in rule.exclude]


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b
