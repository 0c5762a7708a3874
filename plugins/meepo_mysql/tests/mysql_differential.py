"""Differential checking: row images from the binlog against what SELECT returns.

A test runs a list of steps (transactions) against real tables, snapshots each table with
``SELECT`` after every step, then streams the range once and replays the events step by
step: writes insert an image, updates must find their ``before`` image and replace it,
deletes must find and remove theirs, and after each step the replayed tables must equal
the snapshots. So every image is compared with what SELECT returned for that row at that
time, through the mappings the README documents (:func:`documented`), and transactions,
rollbacks and savepoints are checked by what reaches the tables, not by counting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

Mapping = Callable[[Any], Any]


def documented(kind: str) -> Mapping:
    """SELECT's value (pymysql, utf8mb4, ``time_zone = '+00:00'``) -> meepo's value, as the
    README's type table says."""
    return _MAPPINGS.get(kind, _same)


def _same(value: Any) -> Any:
    return value


def _zero_date(value: Any) -> Any:
    # pymysql returns the server's text for dates Python cannot hold; the all-zero date
    # arrives as None, any other such date as that text.
    if isinstance(value, str) and value.startswith("0000-00-00") and \
            value.replace("0", "").strip(" -:.") == "":
        return None
    return value


def _timestamp(value: Any) -> Any:
    value = _zero_date(value)
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) else value


def _bits(value: Any) -> Any:
    return int.from_bytes(value, "big") if isinstance(value, bytes) else value


def _set(value: Any) -> Any:
    return set(value.split(",")) if value else (set() if value == "" else value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _text(value: Any) -> Any:
    # SELECT shows a byte sequence its character set cannot map as "?", or as U+FFFD
    # (tis620); meepo keeps its bytes (see ``meepo_side``).
    return value.replace("\ufffd", "?") if isinstance(value, str) else value


_MAPPINGS: dict[str, Mapping] = {
    "date": _zero_date, "datetime": _zero_date, "timestamp": _timestamp, "bit": _bits,
    "set": _set, "json": _json, "text": _text,
}


def meepo_side(value: Any) -> Any:
    """meepo's value as SELECT shows it where SELECT is lossy: each undecodable byte
    (U+DC00 + byte) is one ``?`` in SELECT's utf8mb4 output."""
    if isinstance(value, str) and any(0xDC00 <= ord(c) <= 0xDCFF for c in value):
        return "".join("?" if 0xDC00 <= ord(c) <= 0xDCFF else c for c in value)
    return value


@dataclass
class Table:
    """A table under test: its key columns and, per column, the SELECT expression giving
    the exact stored value and the documented mapping."""

    name: str
    key: tuple[str, ...]
    columns: dict[str, tuple[str, Mapping]] = field(default_factory=dict)

    def snapshot(self, cur: Any) -> dict[Any, dict[str, Any]]:
        names = list(self.columns)
        exprs = ", ".join(f"{self.columns[n][0]} AS `{n}`" for n in names)
        cur.execute(f"SELECT {exprs} FROM `{self.name}`")
        rows = {}
        for row in cur.fetchall():
            image = {n: self.columns[n][1](v) for n, v in zip(names, row, strict=True)}
            rows[self.pk(image)] = image
        return rows

    def pk(self, image: dict[str, Any]) -> Any:
        values = tuple(image[k] for k in self.key)
        return values[0] if len(values) == 1 else values


@dataclass
class Run:
    """Snapshots after each step, and the GTID sequence number each step ended at."""

    tables: list[Table]
    boundaries: list[int] = field(default_factory=list)
    snapshots: list[dict[str, dict[Any, dict[str, Any]]]] = field(default_factory=list)


def run_steps(db: Any, tables: list[Table], steps: list[list[str]]) -> Run:
    """Run each step on one connection (a list of statements; a step without COMMIT or
    ROLLBACK autocommits each statement) and snapshot every table after it."""
    run = Run(tables)
    with db.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        for step in steps:
            for sql in step:
                cur.execute(sql)
            cur.execute("SELECT @@gtid_binlog_pos")
            run.boundaries.append(_seq(str(cur.fetchone()[0])))
            run.snapshots.append({t.name: t.snapshot(cur) for t in tables})
    return run


def _seq(gtid: str) -> int:
    return int(gtid.split(",")[0].rsplit("-", 1)[1]) if gtid else 0


def replay_and_compare(run: Run, events: list[Any]) -> int:
    """Replay the events step by step against the snapshots; returns the events checked.
    Raises AssertionError naming the step, table, key and column that differ."""
    state: dict[str, dict[Any, dict[str, Any]]] = {t.name: {} for t in run.tables}
    by_name = {t.name: t for t in run.tables}
    pending = list(events)
    for step, (boundary, snapshot) in enumerate(zip(run.boundaries, run.snapshots, strict=True)):
        while pending and pending[0].txid is not None and _seq(pending[0].txid) <= boundary:
            event = pending.pop(0)
            table = by_name.get(event.table)
            if table is None:
                continue
            rows = state[event.table]
            before = _meepo(event.before) if event.before is not None else None
            after = _meepo(event.after) if event.after is not None else None
            if event.action in ("update", "delete"):
                old = table.pk(before)  # type: ignore[arg-type]
                assert old in rows, f"step {step}: {event.action} of {event.table} {old!r} " \
                                    "that the replay does not hold"
                _assert_image(rows[old], before,
                              f"step {step}: before image of {event.name} {old!r}")
                del rows[old]
            if event.action in ("write", "update"):
                new = table.pk(after)  # type: ignore[arg-type]
                assert event.pk == new, (event.pk, new)
                assert new not in rows, f"step {step}: {event.name} {new!r} already present"
                rows[new] = after  # type: ignore[assignment]
        for name, expected in snapshot.items():
            found = state[name]
            assert set(found) == set(expected), (
                f"step {step}: table {name} keys differ: replay has {sorted(map(repr, found))} "
                f"SELECT has {sorted(map(repr, expected))}")
            for key, image in expected.items():
                _assert_image(found[key], image, f"step {step}: {name} {key!r}")
    assert not pending, f"{len(pending)} events after the last step: {pending[:3]}"
    return len(events)


def _meepo(image: dict[str, Any]) -> dict[str, Any]:
    return {k: meepo_side(v) for k, v in image.items()}


def _assert_image(found: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    missing = set(expected) - set(found)
    assert not missing, f"{where}: columns {sorted(missing)} missing from the image"
    for column, value in expected.items():
        got = found[column]
        same = got == value and type(got) is type(value)
        if same and isinstance(value, Decimal):
            same = str(got) == str(value)  # the column's scale, too
        assert same, (f"{where}, column {column!r}: meepo {got!r} ({type(got).__name__}), "
                      f"SELECT {value!r} ({type(value).__name__})")
