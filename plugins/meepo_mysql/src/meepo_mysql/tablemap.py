"""TABLE_MAP events: which table a table id stands for, and how its columns are stored.

With ``binlog_row_metadata = FULL`` the event carries, besides each column's binlog type
and type metadata, the optional metadata meepo needs to decode rows by name: column
names, signedness, character sets (as collation ids), ENUM/SET member strings and the
primary key. :func:`parse_table_map` reads all of it from the event's bytes after the
table id, which the caller uses as the key: each distinct definition is parsed, and gets
its row decoder built, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .binlog import BinlogFormatError, packed_int

# Column types as written in table maps (MySQL's enum_field_types).
DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, NULL, TIMESTAMP = 0, 1, 2, 3, 4, 5, 6, 7
LONGLONG, INT24, DATE, TIME, DATETIME, YEAR, NEWDATE, VARCHAR = 8, 9, 10, 11, 12, 13, 14, 15
BIT, TIMESTAMP2, DATETIME2, TIME2 = 16, 17, 18, 19
JSON, NEWDECIMAL, ENUM, SET = 245, 246, 247, 248
TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB, VAR_STRING, STRING, GEOMETRY = (
    249, 250, 251, 252, 253, 254, 255)

#: Types whose signedness the SIGNEDNESS metadata lists, in column order.
NUMERIC_TYPES = frozenset({TINY, SHORT, INT24, LONG, LONGLONG, NEWDECIMAL, FLOAT, DOUBLE, YEAR})
#: Types whose collation the (COLUMN|DEFAULT)_CHARSET metadata lists.
CHARACTER_TYPES = frozenset({STRING, VAR_STRING, VARCHAR, BLOB})
#: Bytes of per-column metadata in the table map, by type.
_META_BYTES = {
    FLOAT: 1, DOUBLE: 1, BLOB: 1, GEOMETRY: 1, JSON: 1, TIMESTAMP2: 1, DATETIME2: 1,
    TIME2: 1, VARCHAR: 2, BIT: 2, NEWDECIMAL: 2, STRING: 2, VAR_STRING: 2, ENUM: 2, SET: 2,
    TINY_BLOB: 1, MEDIUM_BLOB: 1, LONG_BLOB: 1,
}
BINARY_COLLATION = 63

# Optional metadata field types (MySQL's Table_map_log_event::Optional_metadata_field_type).
_SIGNEDNESS, _DEFAULT_CHARSET, _COLUMN_CHARSET, _COLUMN_NAME = 1, 2, 3, 4
_SET_STR_VALUE, _ENUM_STR_VALUE = 5, 6
_GEOMETRY_TYPE, _SIMPLE_PRIMARY_KEY, _PRIMARY_KEY_WITH_PREFIX = 7, 8, 9
_ENUM_AND_SET_DEFAULT_CHARSET, _ENUM_AND_SET_COLUMN_CHARSET = 10, 11


@dataclass(frozen=True, slots=True)
class Column:
    """One column as the binlog describes it.

    ``type`` is the real type (ENUM and SET are written as STRING with the real type in
    their metadata). ``meta`` is the type's metadata: the length-prefix size for BLOB,
    JSON and GEOMETRY, the byte length for (VAR)CHAR/BINARY, the fractional digits for
    the temporal types, ``(precision, scale)`` for DECIMAL, the bit count for BIT, the
    storage size for ENUM/SET and FLOAT/DOUBLE. ``collation`` is the collation id of
    text, ENUM and SET columns (63 = binary), None for other types.
    """

    index: int
    name: str
    type: int
    meta: int | tuple[int, int]
    unsigned: bool
    nullable: bool
    collation: int | None
    members: tuple[bytes, ...] = ()  # ENUM or SET member strings, in the column's charset
    geometry: int = 0  # GEOMETRY's subtype (MySQL's Field::geometry_type; 1: POINT)


@dataclass(frozen=True, slots=True)
class TableMap:
    """A table definition as of one point in the binlog."""

    schema: str
    table: str
    columns: tuple[Column, ...]
    primary_key: tuple[int, ...]  # column indexes in key order; () without a key
    has_names: bool  # False without binlog_row_metadata = FULL

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def table_names(definition: bytes) -> tuple[str, str]:
    """``(schema, table)`` of a table-map body after its table id, without parsing the
    rest (flags, then each name as length byte, bytes, NUL)."""
    schema_end = 3 + definition[2]
    table_start = schema_end + 2
    table_end = table_start + definition[schema_end + 1]
    return (definition[3:schema_end].decode("utf-8"),
            definition[table_start:table_end].decode("utf-8"))


def table_id_size(post_header: int) -> int:
    return 4 if post_header == 6 else 6


def parse_table_map(definition: bytes, mariadb: bool) -> TableMap:
    """A table-map body after its table id (flags onwards); raises BinlogFormatError."""
    try:
        return _parse(definition, mariadb)
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise BinlogFormatError(f"malformed table map: {exc}") from None


def _parse(data: bytes, mariadb: bool) -> TableMap:
    pos = 2  # flags
    schema, pos = _name(data, pos)
    table, pos = _name(data, pos)
    count, pos = packed_int(data, pos)
    types = list(data[pos:pos + count])
    pos += count
    meta_length, pos = packed_int(data, pos)
    meta_start, meta_end = pos, pos + meta_length
    metas: list[int | tuple[int, int]] = []
    for index, kind in enumerate(types):
        meta, pos = _column_meta(kind, data, pos)
        if kind == STRING and isinstance(meta, tuple):  # ENUM / SET: real type in the meta
            types[index], meta = meta
        metas.append(meta)
    if pos != meta_end:
        raise BinlogFormatError(f"column metadata is {meta_length} bytes, read {pos - meta_start}")
    null_bytes = (count + 7) // 8
    nullable = _bits(data[pos:pos + null_bytes], count, lsb_first=True)
    pos += null_bytes
    optional = _optional_metadata(data, pos)
    return _build(schema, table, types, metas, nullable, optional, mariadb)


def _name(data: bytes, pos: int) -> tuple[str, int]:
    length = data[pos]
    return data[pos + 1:pos + 1 + length].decode("utf-8"), pos + 2 + length


def _column_meta(kind: int, data: bytes, pos: int) -> tuple[int | tuple[int, int], int]:
    size = _META_BYTES.get(kind, 0)
    if size == 0:
        return 0, pos
    if size == 1:
        return data[pos], pos + 1
    first, second = data[pos], data[pos + 1]
    if kind == VARCHAR:
        return first | second << 8, pos + 2
    if kind == BIT:
        return second * 8 + first, pos + 2  # first: bits in the last byte, second: bytes
    if kind == NEWDECIMAL:
        return (first, second), pos + 2
    # STRING / VAR_STRING / ENUM / SET: first byte the real type (and high length bits).
    real = first
    if real in (ENUM, SET):
        return (real, second), pos + 2
    if real & 0x30 != 0x30:  # CHAR longer than 255 bytes keeps two length bits here
        return second | (((real & 0x30) ^ 0x30) << 4), pos + 2
    return second, pos + 2


def _bits(data: bytes, count: int, *, lsb_first: bool) -> list[bool]:
    if lsb_first:
        return [bool(data[i >> 3] & (1 << (i & 7))) for i in range(count)]
    return [bool(data[i >> 3] & (0x80 >> (i & 7))) for i in range(count)]


def _optional_metadata(data: bytes, pos: int) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    while pos < len(data):
        kind = data[pos]
        length, pos = packed_int(data, pos + 1)
        fields[kind] = data[pos:pos + length]
        pos += length
    return fields


def _ints(data: bytes) -> list[int]:
    values, pos = [], 0
    while pos < len(data):
        value, pos = packed_int(data, pos)
        values.append(value)
    return values


def _strings(data: bytes) -> list[bytes]:
    values, pos = [], 0
    while pos < len(data):
        length, pos = packed_int(data, pos)
        values.append(data[pos:pos + length])
        pos += length
    return values


def _member_lists(data: bytes) -> list[tuple[bytes, ...]]:
    lists, pos = [], 0
    while pos < len(data):
        count, pos = packed_int(data, pos)
        members = []
        for _ in range(count):
            length, pos = packed_int(data, pos)
            members.append(data[pos:pos + length])
            pos += length
        lists.append(tuple(members))
    return lists


def _collations(
    fields: Mapping[int, bytes], default_key: int, column_key: int, count: int
) -> list[int | None]:
    """Collation ids of the ``count`` columns a charset field covers, in order."""
    if column_key in fields:
        found: list[int | None] = list(_ints(fields[column_key]))
        return found + [None] * (count - len(found))
    if default_key in fields:
        values = _ints(fields[default_key])
        collations: list[int | None] = [values[0]] * count
        for i in range(1, len(values) - 1, 2):
            if values[i] < count:
                collations[values[i]] = values[i + 1]
        return collations
    return [None] * count


def _build(
    schema: str, table: str, types: list[int], metas: list[int | tuple[int, int]],
    nullable: list[bool], fields: dict[int, bytes], mariadb: bool,
) -> TableMap:
    count = len(types)
    numeric = [i for i, kind in enumerate(types) if kind in NUMERIC_TYPES]
    signedness = _bits(fields.get(_SIGNEDNESS, b""), len(numeric), lsb_first=False) \
        if _SIGNEDNESS in fields else [False] * len(numeric)
    unsigned = dict(zip(numeric, signedness, strict=True))
    names_raw = _strings(fields.get(_COLUMN_NAME, b""))
    has_names = len(names_raw) == count
    names = [n.decode("utf-8") for n in names_raw] if has_names else \
        [f"@{i + 1}" for i in range(count)]
    # MariaDB also lists GEOMETRY among the character columns (with the binary collation).
    text = [i for i, kind in enumerate(types)
            if kind in CHARACTER_TYPES or (mariadb and kind == GEOMETRY)]
    text_collations = _collations(fields, _DEFAULT_CHARSET, _COLUMN_CHARSET, len(text))
    enum_set = [i for i, kind in enumerate(types) if kind in (ENUM, SET)]
    enum_set_collations = _collations(
        fields, _ENUM_AND_SET_DEFAULT_CHARSET, _ENUM_AND_SET_COLUMN_CHARSET, len(enum_set))
    collation: dict[int, int | None] = {
        **dict(zip(text, text_collations, strict=True)),
        **dict(zip(enum_set, enum_set_collations, strict=True)),
    }
    enums = iter(_member_lists(fields.get(_ENUM_STR_VALUE, b"")))
    sets = iter(_member_lists(fields.get(_SET_STR_VALUE, b"")))
    geometries = iter(_ints(fields.get(_GEOMETRY_TYPE, b"")))
    columns = []
    for i, kind in enumerate(types):
        members: tuple[bytes, ...] = ()
        if kind == ENUM:
            members = next(enums, ())
        elif kind == SET:
            members = next(sets, ())
        columns.append(Column(
            index=i, name=names[i], type=kind, meta=metas[i], unsigned=unsigned.get(i, False),
            nullable=nullable[i], collation=collation.get(i),
            members=members, geometry=next(geometries, 0) if kind == GEOMETRY else 0,
        ))
    key = _ints(fields.get(_SIMPLE_PRIMARY_KEY, b""))
    if not key and _PRIMARY_KEY_WITH_PREFIX in fields:
        key = _ints(fields[_PRIMARY_KEY_WITH_PREFIX])[0::2]
    return TableMap(schema, table, tuple(columns), tuple(k for k in key if k < count),
                    has_names)
