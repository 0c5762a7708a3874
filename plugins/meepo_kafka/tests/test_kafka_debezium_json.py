"""JSON columns back from Debezium's messages, exactly: the ``kafka`` source's decoder
reads the ``io.debezium.data.Json`` values Debezium itself wrote (the snapshot golden
file: numbers beyond a double's precision and range, ``1.10``, bare scalars, json and
jsonb) into documents whose numbers keep their text, and writing them again gives
Debezium's text, byte for byte. No server: the golden file is the oracle."""

from __future__ import annotations

import json

from meepo_kafka.debezium import DebeziumFormat

from meepo_core import JsonNumber, dumps_exact

from .debezium_golden import GOLDEN


def d_json_records() -> list[dict[str, str]]:
    records = [json.loads(line) for line in
               (GOLDEN / "postgres_snapshot.jsonl").read_text().splitlines()]
    return [record for record in records if record["topic"] == "dbz.snap.d_json"]


def test_debeziums_json_values_read_back_exactly() -> None:
    decoder = DebeziumFormat("dbz")
    checked = 0
    for record in d_json_records():
        event = decoder.decode(record["key"].encode(), record["value"].encode(), [])
        assert event is not None and event.after is not None
        written = json.loads(record["value"])["payload"]["after"]
        for column in ("j", "jb"):
            assert dumps_exact(event.after[column]) == written[column], (event.pk, column)
            checked += 1
        if event.pk == 1:
            assert isinstance(event.after["jb"]["big"], JsonNumber)
            assert event.after["jb"]["f"] == 1.1  # the float every other sink sees
    assert checked == 8
