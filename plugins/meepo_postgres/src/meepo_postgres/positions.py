"""LSNs, WAL positions (what a checkpoint stores) and the row sequence number.

A position is a JSON object::

    {"lsn": "0/16B3748", "sequence": 1234}

``lsn`` is where the next transaction may begin: the end of the last delivered
transaction's commit record (or the server's WAL end reported while nothing of this
pipeline was written); replication resumes there. ``sequence`` is the last
``RowEvent.sequence`` delivered before it (0 when none yet), which keeps sequences
strictly increasing across restarts (see :func:`sequence_base`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LSN_TEXT = re.compile(r"^\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*$")
#: Bits of a sequence number left for the row index inside one transaction.
INDEX_BITS = 16
#: Sequences must stay below this (an int64, as external versions are).
SEQUENCE_LIMIT = 2**63


def parse_lsn(text: str) -> int:
    """``"16/B374D848"`` -> int; raises ``ValueError`` for anything else."""
    match = LSN_TEXT.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an LSN like \"0/16B3748\"")
    return (int(match[1], 16) << 32) | int(match[2], 16)


def format_lsn(lsn: int) -> str:
    """int -> ``"16/B374D848"``, PostgreSQL's notation."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def sequence_base(commit_lsn: int, last_sequence: int) -> int:
    """The sequence of a transaction's first row.

    ``(commit LSN / 8) << 16``: commit records start 8-byte aligned, so each transaction
    owns 65,536 numbers, in commit order, and row ``i`` gets ``base + i``. Should a huge
    transaction run past its range, the next one starts right after it instead
    (``last_sequence + 1``); the last sequence travels in the checkpoint, so a replay
    numbers every row the same way again. Good for 2**50 bytes (1 PiB) of WAL.
    """
    return max((commit_lsn >> 3) << INDEX_BITS, last_sequence + 1)


@dataclass(frozen=True)
class WalPosition:
    """A parsed position in the WAL: where replication resumes and the last sequence
    delivered before it. The JSON form is what the core's checkpoint stores for this
    source (not to be confused with :class:`meepo_core.Checkpoint`, the stored record)."""

    lsn: int
    sequence: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"lsn": format_lsn(self.lsn), "sequence": self.sequence}

    @classmethod
    def from_json(cls, data: Any) -> WalPosition:
        """Parse a position; raises ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("lsn"), str):
            raise ValueError(f"expected an object with a string \"lsn\", not {data!r}")
        sequence = data.get("sequence", 0)
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
            raise ValueError(f"\"sequence\" must be a non-negative integer, not {sequence!r}")
        return cls(parse_lsn(data["lsn"]), sequence)
