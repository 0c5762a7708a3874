"""python-mysql-replication's own row decoding, kept as a reference (``decoder = "library"``).

Everything else stays meepo's (connection, transactions, events); only the rows of each
rows event are decoded by the library's ``RowsEvent``, from the same packet, and then
brought to meepo's shapes where the library's output differs by design rather than by
mistake: TIMESTAMP made UTC-aware, BIT from its ``"0101"`` text to ``int``, JSON
decoded (MySQL: bytes keys and strings; MariaDB: the ``json_valid`` columns parsed),
BINARY(n) padded and an empty SET as ``set()``. The library's known mistakes (empty
binaries as ``''``, zero TIMESTAMP as 1970, YEAR 0 as 1900, several character sets,
negative fractional TIME) are left in: comparing the two decoders shows them. It is
several times slower; use it to check a value meepo decodes differently.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from . import compat
from . import tablemap as tm
from .binlog import FormatDescription
from .rows import RowDecodeError, RowsBody
from .values import mariadb_json, mysql_json

Converter = Callable[[Any], Any]


class LibraryTables:
    """The library's table map (table id -> its parse), fed every table-map packet."""

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor
        self.table_map: dict[int, Any] = {}

    def table_map_event(self, packet: bytes, fmt: FormatDescription) -> None:
        compat.library_event(packet, self.table_map, self.flavor, fmt.checksum,
                             fmt.post_header_lengths)


class LibraryRows:
    """Decodes rows events of one table definition with the library."""

    def __init__(self, tables: LibraryTables, table: tm.TableMap, hidden: Collection[str],
                 extended: Mapping[str, str]) -> None:
        self.tables = tables
        self.hidden = frozenset(hidden)
        self.converters: list[tuple[str, Converter]] = []
        self.empty_sets: list[str] = []
        for column in table.columns:
            kind, name = column.type, column.name
            if kind in (tm.TIMESTAMP, tm.TIMESTAMP2):
                self.converters.append((name, _utc))
            elif kind == tm.BIT:
                self.converters.append((name, _bits))
            elif kind == tm.JSON:
                self.converters.append((name, mysql_json))
            elif kind == tm.SET:
                self.empty_sets.append(name)
            elif kind == tm.STRING and column.collation == tm.BINARY_COLLATION:
                self.converters.append((name, _PadBinary(int(column.meta))))  # type: ignore[arg-type]
            elif extended.get(name) == "json":
                self.converters.append((name, _text_json))

    def decode(self, body: RowsBody, packet: bytes, fmt: FormatDescription) -> list[Any]:
        """Images or (before, after) pairs, as :meth:`meepo_mysql.rows.TableDecoder.decode`."""
        event = compat.library_event(packet, self.tables.table_map, self.tables.flavor,
                                     fmt.checksum, fmt.post_header_lengths)
        if event is None:
            raise RowDecodeError("the library skipped the rows event (no table map for it)")
        try:
            rows = event.rows
        except Exception as exc:
            raise RowDecodeError(f"the library failed: {type(exc).__name__}: {exc}") from None
        if "before_values" in (rows[0] if rows else {}):
            return [(self._image(r["before_values"], r["before_none_sources"]),
                     self._image(r["after_values"], r["after_none_sources"])) for r in rows]
        return [self._image(r["values"], r["none_sources"]) for r in rows]

    def _image(self, values: dict[str, Any], none_sources: dict[str, str]) -> dict[str, Any]:
        for name, convert in self.converters:
            value = values.get(name)
            if value is not None:
                values[name] = convert(value)
        for name in self.empty_sets:
            if values.get(name) is None and none_sources.get(name) == "empty set":
                values[name] = set()
        for name in self.hidden:
            values.pop(name, None)
        return values


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _bits(value: str) -> int:
    return int(value, 2)


def _text_json(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    return mariadb_json(value)


class _PadBinary:
    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, value: Any) -> Any:
        return value.ljust(self.length, b"\0") if isinstance(value, bytes) else value
