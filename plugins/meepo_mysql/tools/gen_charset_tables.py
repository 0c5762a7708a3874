"""Regenerate ``meepo_mysql/charsets.json`` from a live MariaDB server.

The server itself says how it maps each stored byte sequence to Unicode: for every
character set it converts every byte (single-byte sets) or every 1-, 2- and 3-byte
sequence (multi-byte sets) to utf8mb4, and this script records the result:

* single-byte sets: the 256 characters, ``null`` where the server has no mapping (it
  answers ``?`` or U+FFFD);
* multi-byte sets: the Python codec that agrees with the server best, plus every
  sequence where they differ (``null``: no mapping on the server).

Character sets whose Python codec is exact need no table. Run it against the oldest
supported MariaDB (and check the diff) when a new server version adds or changes a
character set::

    python plugins/meepo_mysql/tools/gen_charset_tables.py mysql://root@127.0.0.1:3306
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

OUT = Path(__file__).resolve().parents[1] / "src" / "meepo_mysql" / "charsets.json"
#: Multi-byte character sets: (candidate base codec, byte-sequence shapes to compare).
MULTI_BYTE = {
    "big5": "big5",
    "cp932": "cp932",
    "sjis": "shift_jis",
    "euckr": "cp949",
    "gb2312": "gb2312",
    "gbk": "gbk",
    "ujis": "euc_jp",
    "eucjpms": "euc_jp",
}
THREE_BYTE_LEAD = {"ujis": 0x8F, "eucjpms": 0x8F}  # JIS X 0212 behind SS3


def server_map(cur: Any, charset: str, sequences: list[bytes]) -> dict[bytes, str | None]:
    """The server's Unicode text for each sequence, None where it has none."""
    found: dict[bytes, str | None] = {}
    for low in range(0, len(sequences), 256):
        chunk = sequences[low:low + 256]
        cur.execute("SELECT " + ",".join(
            f"HEX(CONVERT(CAST(UNHEX('{seq.hex()}') AS CHAR CHARACTER SET {charset}) "
            "USING utf8mb4))" for seq in chunk))
        for seq, text in zip(chunk, cur.fetchone(), strict=True):
            value = bytes.fromhex(text).decode() if text else None
            good = value is not None and len(value) == 1 and value not in ("?", "\ufffd")
            found[seq] = value if good or seq == b"?" else None
    return found


def python_map(codec: str, seq: bytes) -> str | None:
    try:
        value = seq.decode(codec)
    except UnicodeDecodeError:
        return None
    return value if len(value) == 1 else None


def main() -> None:
    parts = urlsplit(sys.argv[1])
    conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                           user=unquote(parts.username or "root"),
                           password=unquote(parts.password or ""), charset="utf8mb4")
    cur = conn.cursor()
    cur.execute("SET SESSION sql_mode = ''")
    cur.execute("SELECT VERSION()")
    version = cur.fetchone()[0]
    cur.execute("SELECT CHARACTER_SET_NAME, MAXLEN FROM information_schema.CHARACTER_SETS")
    charsets = dict(cur.fetchall())
    single = {}
    for name, maxlen in sorted(charsets.items()):
        if maxlen == 1 and name != "binary":
            table = server_map(cur, name, [bytes([b]) for b in range(256)])
            single[name] = [table[bytes([b])] for b in range(256)]
    multi = {}
    for name, codec in MULTI_BYTE.items():
        sequences = [bytes([b]) for b in range(0x80, 0x100)]
        sequences += [bytes([a, b]) for a in range(0x81, 0xFF) for b in range(0x40, 0xFF)]
        if name in THREE_BYTE_LEAD:
            lead = THREE_BYTE_LEAD[name]
            sequences += [bytes([lead, a, b]) for a in range(0xA1, 0xFF) for b in range(0xA1, 0xFF)]
        table = server_map(cur, name, sequences)
        overrides = {seq.hex(): text for seq, text in table.items()
                     if python_map(codec, seq) != text}
        multi[name] = {"codec": codec, "overrides": overrides}
        print(f"{name}: {codec} differs from the server on {len(overrides)} sequences")
    OUT.write_text(json.dumps({"server": version, "single_byte": single, "multi_byte": multi},
                              ensure_ascii=True, sort_keys=True, indent=0) + "\n")
    print(f"wrote {OUT} from {version}")


if __name__ == "__main__":
    main()
