"""The binlog's event framing and the small events: header, rotate, GTID, query, XID.

A binlog event as the dump sends it is ``00`` (OK byte), a 19-byte common header
(:data:`HEADER`: timestamp, type, server id, event size, next position, flags), the
type's post-header and body, and a 4-byte CRC32 when ``binlog_checksum = CRC32``. The
``parse_*`` functions read the bodies meepo acts on; row and table-map bodies are read by
:mod:`meepo_mysql.rows` and :mod:`meepo_mysql.tablemap`.

References: the MariaDB replication protocol pages and MySQL's ``libbinlogevents``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

# Event types (MySQL's Log_event_type, MariaDB's additions from 160).
QUERY = 2
ROTATE = 4
FORMAT_DESCRIPTION = 15
XID = 16
TABLE_MAP = 19
WRITE_ROWS_V1, UPDATE_ROWS_V1, DELETE_ROWS_V1 = 23, 24, 25
INCIDENT = 26
HEARTBEAT = 27
WRITE_ROWS_V2, UPDATE_ROWS_V2, DELETE_ROWS_V2 = 30, 31, 32
MYSQL_GTID = 33
MYSQL_ANONYMOUS_GTID = 34
XA_PREPARE = 38
PARTIAL_UPDATE_ROWS = 39
TRANSACTION_PAYLOAD = 40
MARIADB_GTID = 162
QUERY_COMPRESSED = 165
WRITE_ROWS_COMPRESSED_V1, UPDATE_ROWS_COMPRESSED_V1, DELETE_ROWS_COMPRESSED_V1 = 166, 167, 168
WRITE_ROWS_COMPRESSED, UPDATE_ROWS_COMPRESSED, DELETE_ROWS_COMPRESSED = 169, 170, 171

#: Row event type -> (action, version, compressed). Version 2 has the extra-data block.
ROWS_EVENTS: dict[int, tuple[str, int, bool]] = {
    WRITE_ROWS_V1: ("write", 1, False), UPDATE_ROWS_V1: ("update", 1, False),
    DELETE_ROWS_V1: ("delete", 1, False), WRITE_ROWS_V2: ("write", 2, False),
    UPDATE_ROWS_V2: ("update", 2, False), DELETE_ROWS_V2: ("delete", 2, False),
    WRITE_ROWS_COMPRESSED_V1: ("write", 1, True), UPDATE_ROWS_COMPRESSED_V1: ("update", 1, True),
    DELETE_ROWS_COMPRESSED_V1: ("delete", 1, True), WRITE_ROWS_COMPRESSED: ("write", 2, True),
    UPDATE_ROWS_COMPRESSED: ("update", 2, True), DELETE_ROWS_COMPRESSED: ("delete", 2, True),
}

COMMON_HEADER = 19
#: The common header, after the OK byte.
HEADER = struct.Struct("<IBIIIH")
MARIADB_FL_STANDALONE = 0x01


class BinlogFormatError(Exception):
    """An event whose bytes do not follow the binlog format (corrupt or unknown)."""


@dataclass(frozen=True, slots=True)
class FormatDescription:
    """What the server says about the events of this binlog file."""

    server_version: str
    post_header_lengths: bytes
    checksum: bool

    def post_header(self, event_type: int, default: int) -> int:
        index = event_type - 1
        if 0 <= index < len(self.post_header_lengths):
            return self.post_header_lengths[index]
        return default


def parse_format_description(body: bytes) -> FormatDescription:
    """The body of a FORMAT_DESCRIPTION event (binlog v4), its checksum trailer included."""
    version = body[2:52].split(b"\0", 1)[0].decode("ascii", "replace")
    header_length = body[56]
    if header_length != COMMON_HEADER:
        raise BinlogFormatError(f"unsupported binlog common header of {header_length} bytes")
    # Servers that know checksums end the event with the algorithm (1 byte) and a CRC32.
    lengths = body[57:-5]
    checksum = body[-5] == 1
    return FormatDescription(version, bytes(lengths), checksum)


def parse_rotate(body: bytes) -> tuple[str, int]:
    """``(next file, position in it)``."""
    (position,) = struct.unpack_from("<Q", body)
    return body[8:].decode("utf-8", "replace"), position


@dataclass(frozen=True, slots=True)
class Gtid:
    """A transaction's GTID and how the transaction is shaped."""

    text: str
    standalone: bool  # MariaDB: a single statement (DDL) without BEGIN/COMMIT


def parse_mariadb_gtid(body: bytes, server_id: int) -> Gtid:
    seq, domain, flags = struct.unpack_from("<QIB", body)
    return Gtid(f"{domain}-{server_id}-{seq}", standalone=bool(flags & MARIADB_FL_STANDALONE))


def parse_mysql_gtid(body: bytes) -> Gtid:
    sid = body[1:17].hex()
    (gno,) = struct.unpack_from("<Q", body, 17)
    uuid = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
    return Gtid(f"{uuid}:{gno}", standalone=False)


def parse_query(body: bytes, post_header: int, compressed: bool = False) -> tuple[str, str]:
    """``(default schema, statement)`` of a QUERY event."""
    schema_length = body[8]
    (status_length,) = struct.unpack_from("<H", body, 11)
    start = post_header + status_length
    schema = body[start:start + schema_length].decode("utf-8", "replace")
    text = body[start + schema_length + 1:]
    if compressed:
        text = uncompress(text)
    return schema, text.decode("utf-8", "replace")


def uncompress(data: bytes) -> bytes:
    """MariaDB's compressed event payload (``log_bin_compress``): one header byte
    (``0x80 | length size``; algorithm 0 = zlib), the uncompressed length big-endian,
    then the zlib stream."""
    if not data or data[0] & 0xF0 != 0x80:
        raise BinlogFormatError(f"unknown compression header {data[:1].hex() or 'none'}")
    size_bytes = data[0] & 0x07
    expected = int.from_bytes(data[1:1 + size_bytes], "big")
    try:
        plain = zlib.decompress(data[1 + size_bytes:])
    except zlib.error as exc:
        raise BinlogFormatError(f"compressed event does not inflate: {exc}") from None
    if len(plain) != expected:
        raise BinlogFormatError(
            f"compressed event inflates to {len(plain)} bytes, its header says {expected}"
        )
    return plain


def packed_int(data: bytes, offset: int) -> tuple[int, int]:
    """A length-encoded integer at ``offset``: ``(value, offset after it)``."""
    first = data[offset]
    if first < 0xFB:
        return first, offset + 1
    if first == 0xFC:
        return data[offset + 1] | data[offset + 2] << 8, offset + 3
    if first == 0xFD:
        return int.from_bytes(data[offset + 1:offset + 4], "little"), offset + 4
    if first == 0xFE:
        return int.from_bytes(data[offset + 1:offset + 9], "little"), offset + 9
    raise BinlogFormatError(f"invalid length-encoded integer prefix 0x{first:02x}")
