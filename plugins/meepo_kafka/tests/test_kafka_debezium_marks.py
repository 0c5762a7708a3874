"""Debezium's ``source.snapshot`` marks, both ways, without a server: every place the
core gives a snapshot row maps to the mark Debezium would write, and the ``kafka``
source reads Debezium's own marks (the snapshot golden file) back into places that write
the same marks again."""

from __future__ import annotations

import json

import pytest
from meepo_kafka.debezium import DebeziumFormat
from meepo_kafka.debezium_snapshot import snapshot_marker

from meepo_core import RowEvent, SnapshotPlace

from .debezium_golden import GOLDEN

P = SnapshotPlace


@pytest.mark.parametrize(("place", "mark"), [
    (P.INITIAL | P.FIRST | P.FIRST_IN_TABLE, "first"),
    (P.INITIAL | P.FIRST_IN_TABLE, "first_in_data_collection"),
    (P.INITIAL, "true"),
    (P.INITIAL | P.LAST_IN_TABLE, "last_in_data_collection"),
    (P.INITIAL | P.FIRST_IN_TABLE | P.LAST_IN_TABLE, "last_in_data_collection"),
    (P.INITIAL | P.FIRST | P.FIRST_IN_TABLE | P.LAST_IN_TABLE, "first"),  # one-row first table
    (P.INITIAL | P.LAST | P.LAST_IN_TABLE, "last"),
    (P.INITIAL | P.FIRST | P.FIRST_IN_TABLE | P.LAST | P.LAST_IN_TABLE, "last"),
    (P.FIRST | P.FIRST_IN_TABLE | P.LAST | P.LAST_IN_TABLE, "incremental"),
    (P(0), "incremental"),
    (None, "true"),
])
def test_places_give_debeziums_marks(place: SnapshotPlace | None, mark: str) -> None:
    event = RowEvent("s", "t", "read", 1, None, {"id": 1}, snapshot=place)
    assert snapshot_marker(event) == mark
    assert snapshot_marker(RowEvent("s", "t", "write", 1, None, {"id": 1})) == "false"


@pytest.mark.parametrize("variant", ["snapshot", "incremental"])
def test_debeziums_marks_read_back_write_the_same_marks(variant: str) -> None:
    decoder = DebeziumFormat("dbz")
    seen = set()
    for line in (GOLDEN / f"postgres_{variant}.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["value"] is None:
            continue
        event = decoder.decode(record["key"].encode() if record["key"] else None,
                               record["value"].encode(), [])
        assert event is not None
        mark = json.loads(record["value"])["payload"]["source"]["snapshot"]
        assert snapshot_marker(event) == mark
        seen.add(mark)
    assert seen == ({"first_in_data_collection", "true", "last_in_data_collection", "last",
                     "false"} if variant == "snapshot" else {"incremental", "false"})
