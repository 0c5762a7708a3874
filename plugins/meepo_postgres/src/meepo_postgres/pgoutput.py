"""Decoding the messages of PostgreSQL's built-in ``pgoutput`` plugin (protocol version 1).

Each message is one ``XLogData`` payload of the replication stream; its first byte names
its kind. Transactions arrive whole and in commit order: ``B`` (begin, which already
carries the commit LSN, time and xid), then ``R``/``Y`` (relation and type descriptions,
sent before the first change that needs them and again after DDL; a ``Y`` is skipped:
values are converted by type OID through the catalog), ``I``/``U``/``D``/``T``
(insert, update, delete, truncate), then ``C`` (commit). Column values arrive as text
(``t``), NULL (``n``) or "unchanged TOAST value, not sent" (``u``).

The layouts are those of "Logical Replication Message Formats" in the PostgreSQL manual.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from meepo_core import UNCHANGED

from .values import Converter, ValueTooDeep

BEGIN, COMMIT, RELATION, TYPE, INSERT, UPDATE, DELETE, TRUNCATE, ORIGIN, MESSAGE = (
    ord(c) for c in "BCRYIUDTOM"
)
NEW_TUPLE, KEY_TUPLE, OLD_TUPLE = ord("N"), ord("K"), ord("O")
_TEXT, _NULL, _TOAST, _BINARY = ord("t"), ord("n"), ord("u"), ord("b")
#: The replica identity setting in a Relation message.
IDENTITY_DEFAULT, IDENTITY_NOTHING, IDENTITY_FULL, IDENTITY_INDEX = "dnfi"
TRUNCATE_CASCADE, TRUNCATE_RESTART_IDENTITY = 1, 2

_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">BQQq")
_UINT32 = struct.Struct(">I")
_INT16 = struct.Struct(">h")
_COLUMN_TAIL = struct.Struct(">Ii")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)



class ProtocolError(Exception):
    """A message that does not follow the pgoutput format."""


def pg_time(microseconds: int) -> datetime:
    """A PostgreSQL timestamp (microseconds since 2000-01-01 UTC) as a UTC datetime."""
    return _PG_EPOCH + timedelta(microseconds=microseconds)


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # where the commit record starts
    committed_at: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int  # where the commit record ends: the next transaction may start here
    committed_at: datetime


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    typmod: int
    identity: bool  # part of the replica identity (every column under REPLICA IDENTITY FULL)


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    schema: str
    name: str
    replica_identity: str  # one of IDENTITY_*
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


def _string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(0, pos)
    return data[pos:end].decode("utf-8"), end + 1


def parse_begin(data: bytes) -> Begin:
    final_lsn, stamp, xid = _BEGIN.unpack_from(data, 1)
    return Begin(final_lsn, pg_time(stamp), xid)


def parse_commit(data: bytes) -> Commit:
    _flags, commit_lsn, end_lsn, stamp = _COMMIT.unpack_from(data, 1)
    return Commit(commit_lsn, end_lsn, pg_time(stamp))


def parse_relation(data: bytes) -> Relation:
    (oid,) = _UINT32.unpack_from(data, 1)
    schema, pos = _string(data, 5)
    name, pos = _string(data, pos)
    identity = chr(data[pos])
    (count,) = _INT16.unpack_from(data, pos + 1)
    pos += 3
    columns = []
    for _ in range(count):
        flags = data[pos]
        column, pos = _string(data, pos + 1)
        type_oid, typmod = _COLUMN_TAIL.unpack_from(data, pos)
        pos += 8
        columns.append(Column(column, type_oid, typmod, bool(flags & 1)))
    # pgoutput leaves the namespace empty for pg_catalog.
    return Relation(oid, schema or "pg_catalog", name, identity, tuple(columns))


def parse_truncate(data: bytes) -> Truncate:
    (count,) = _UINT32.unpack_from(data, 1)
    options = data[5]
    oids = struct.unpack_from(f">{count}I", data, 6)
    return Truncate(
        tuple(oids), bool(options & TRUNCATE_CASCADE), bool(options & TRUNCATE_RESTART_IDENTITY)
    )


@dataclass(frozen=True, slots=True)
class Message:
    """A logical decoding message (``pg_logical_emit_message``)."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


_MESSAGE = struct.Struct(">BQ")


def parse_message(data: bytes) -> Message:
    flags, lsn = _MESSAGE.unpack_from(data, 1)
    prefix, pos = _string(data, 1 + _MESSAGE.size)
    (length,) = _UINT32.unpack_from(data, pos)
    start = pos + _UINT32.size
    return Message(bool(flags & 1), lsn, prefix, bytes(data[start:start + length]))


def relation_oid(data: bytes) -> int:
    """The relation OID of an Insert, Update or Delete message."""
    return int(_UINT32.unpack_from(data, 1)[0])


def read_tuple(
    data: bytes, pos: int, converters: Sequence[Converter | None]
) -> tuple[list[Any], int]:
    """The column values of the TupleData at ``pos``, and the position after it.

    Text values go through the column's converter (``None``: kept as ``str``); NULL is
    ``None``; an unchanged TOAST value, which the server did not send, is
    :data:`meepo_core.UNCHANGED`. A value too deep to convert raises
    :class:`~meepo_postgres.values.ValueTooDeep` naming its column.
    """
    count = (data[pos] << 8) | data[pos + 1]
    pos += 2
    values: list[Any] = []
    append = values.append
    unpack = _UINT32.unpack_from
    for index in range(count):
        kind = data[pos]
        if kind == _TEXT:
            start = pos + 5
            pos = start + unpack(data, pos + 1)[0]
            convert = converters[index]
            text = data[start:pos].decode("utf-8")
            try:
                append(text if convert is None else convert(text))
            except ValueTooDeep as exc:
                exc.column = index
                raise
        elif kind == _NULL:
            append(None)
            pos += 1
        elif kind == _TOAST:
            append(UNCHANGED)
            pos += 1
        else:
            raise ProtocolError(
                f"column {index}: value kind {chr(kind)!r} (binary values were not requested)"
            )
    return values, pos
