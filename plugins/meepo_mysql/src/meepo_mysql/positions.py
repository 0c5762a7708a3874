"""Binlog positions, GTID sets and the row sequence number.

A checkpoint position is a JSON object::

    {"file": "binlog.000003", "pos": 1234, "gtid": "0-1-100"}

``file``/``pos`` is the binlog coordinate right *after* a transaction's commit event
(its XID or COMMIT event's ``log_pos``), so resuming there starts at the next
transaction. ``gtid`` is present when known: on MariaDB the GTID state after that
transaction (one ``domain-server-seq`` per domain, comma-separated), on MySQL the
executed GTID set (``uuid:1-100,...``), the latter only when streaming in GTID mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MARIADB_GTID = re.compile(r"^\s*\d+-\d+-\d+\s*(,\s*\d+-\d+-\d+\s*)*$")
MYSQL_GTID = re.compile(
    r"^\s*[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(:\d+(-\d+)?)+\s*"
    r"(,\s*[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(:\d+(-\d+)?)+\s*)*$"
)
FILE_POS = re.compile(r"^(?P<file>[^:\s]+):(?P<pos>\d+)$")


def gtid_flavor(text: str) -> str | None:
    """``"mariadb"`` or ``"mysql"`` for a GTID set in that server's syntax, else None."""
    if MARIADB_GTID.match(text):
        return "mariadb"
    if MYSQL_GTID.match(text):
        return "mysql"
    return None


def normalize_gtid(text: str) -> str:
    return ",".join(part.strip() for part in text.split(",") if part.strip())


def file_index(name: str) -> int:
    """The numeric suffix of a binlog file name (``binlog.000003`` -> 3)."""
    _, _, suffix = name.rpartition(".")
    if not suffix.isdigit():
        raise ValueError(f"binlog file name {name!r} has no numeric suffix")
    return int(suffix)


def sequence_base(file_name_index: int, event_start: int) -> int:
    """The sequence of the first row of a rows event.

    ``(file index << 32) | (offset of the rows event in its file)``; row ``i`` of the
    event gets ``base + i``. Every row occupies at least one byte of its event, so
    ``event start + i`` stays below the next event's start: the sequence grows strictly
    with commit order across the whole binlog (binlog offsets fit in 32 bits, and file
    indexes only grow), and a re-delivered row gets the same number again. After a
    failover to another server with different binlog files the numbers start over.
    """
    return (file_name_index << 32) | event_start


@dataclass(frozen=True)
class BinlogPosition:
    """A parsed checkpoint position."""

    file: str
    pos: int
    gtid: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"file": self.file, "pos": self.pos}
        if self.gtid:
            data["gtid"] = self.gtid
        return data

    @classmethod
    def from_json(cls, data: Any) -> BinlogPosition:
        """Parse a checkpoint; raises ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object with \"file\" and \"pos\", not {data!r}")
        file, pos, gtid = data.get("file"), data.get("pos"), data.get("gtid")
        if not isinstance(file, str) or not isinstance(pos, int) or isinstance(pos, bool):
            raise ValueError(f"expected string \"file\" and integer \"pos\", not {data!r}")
        if gtid is not None and (not isinstance(gtid, str) or gtid_flavor(gtid) is None):
            raise ValueError(f"\"gtid\" is not a GTID set: {gtid!r}")
        return cls(file, pos, gtid or None)


class MariaDBGtidState:
    """MariaDB's replication state: the last GTID applied per replication domain."""

    def __init__(self, text: str | None = None) -> None:
        self.domains: dict[int, str] = {}
        self._text: str | None = None
        for part in (text or "").split(","):
            if part.strip():
                self.update(part.strip())

    def update(self, gtid: str) -> None:
        self.domains[int(gtid[:gtid.index("-")])] = gtid
        self._text = None

    def __str__(self) -> str:
        if self._text is None:
            domains = self.domains
            self._text = ",".join(domains[d] for d in sorted(domains))
        return self._text


class MySQLGtidState:
    """MySQL's executed GTID set, grown by each committed transaction's GTID."""

    def __init__(self, text: str) -> None:
        from pymysqlreplication.gtid import GtidSet

        self._set = GtidSet(normalize_gtid(text))

    def update(self, gtid: str) -> None:
        from pymysqlreplication.gtid import Gtid

        one = Gtid(gtid)
        if one not in self._set:
            self._set = self._set + one

    def __str__(self) -> str:
        return str(self._set)
