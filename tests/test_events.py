"""The event model, its lossless JSON form, and transaction-aware batching."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from meepo_core.batching import Batcher
from meepo_core.dead_letters import dead_letter_record
from meepo_core.events import UNCHANGED, RowEvent
from meepo_core.serialization import decode_value, encode_value, event_from_json, event_to_json


def event(pk: object = 1, action: str = "write", **kw: object) -> RowEvent:
    return RowEvent("shop", "orders", action, pk, **kw)  # type: ignore[arg-type]


def test_name_and_frozen() -> None:
    e = event(7, "update")
    assert e.name == "orders_update"
    assert e.qualified_table == "shop.orders"
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.pk = 8  # type: ignore[misc]


def test_rejects_unknown_action_and_naive_timestamps() -> None:
    with pytest.raises(ValueError, match="action must be one of write, update, delete, read"):
        event(action="insert")
    with pytest.raises(ValueError, match="timezone-aware"):
        event(committed_at=datetime(2026, 1, 1))


def test_trusted_builds_the_same_frozen_event() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    args = ("shop", "orders", "update", (1, "a"), {"id": 0}, {"id": 1}, {"pos": 4}, at,
            "0-1-2", 42, ("id", "k"))
    built, trusted = RowEvent(*args), RowEvent.trusted(*args)  # type: ignore[arg-type]
    assert trusted == built and repr(trusted) == repr(built)
    assert dataclasses.astuple(trusted) == dataclasses.astuple(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trusted.pk = 8  # type: ignore[misc]


def test_json_roundtrip_is_lossless() -> None:
    row = {
        "id": 18446744073709551615,
        "price": Decimal("12.340"),
        "ratio": 0.5,
        "name": "café 🎉",
        "blob": b"\x00\xff",
        "day": date(2026, 2, 3),
        "at": datetime(2026, 2, 3, 4, 5, 6, 789, UTC),
        "t": time(1, 2, 3, 4),
        "dur": timedelta(hours=-1, microseconds=5),
        "tags": {"a", "b"},
        "doc": {"nested": [1, {"x": None}]},
        "none": None,
    }
    original = event(
        pk=(3, "x"),
        action="update",
        before=row,
        after={**row, "ratio": 1.5},
        position={"file": "binlog.000002", "pos": 4},
        txid="0-1-9",
        sequence=42,
        pk_columns=("id", "name"),
    )
    restored = event_from_json(event_to_json(original))
    assert restored == original
    assert isinstance(restored.pk, tuple) and restored.pk_columns == ("id", "name")
    assert restored.after["price"] == Decimal("12.340")


@pytest.mark.parametrize(
    "value",
    [
        {"$date": "2020-01-01"},
        {"$decimal": "abc"},
        {"$timedelta": "x"},
        {"$bytes": "not base64!"},
        {"$dict": {"$date": "2020-01-01"}},
        {"$unknown": 1},
        {"$": None},
        [{"$set": [1]}, {"a": {"$tuple": [1, 2]}}],
        {"$date": "2020-01-01", "other": 1},
        {"doc": {"$datetime": {"$time": "x"}}},
    ],
)
def test_user_objects_shaped_like_tags_round_trip_exactly(value: object) -> None:
    original = event(after={"id": 1, "doc": value})
    restored = event_from_json(event_to_json(original))
    assert restored.after == {"id": 1, "doc": value}
    assert decode_value(encode_value(value)) == value


@pytest.mark.parametrize("depth", [600, 950])
def test_json_nested_as_deep_as_json_loads_reads_round_trips(depth: int) -> None:
    """Sources decode JSON documents with json.loads (about 1,000 levels); the lossless
    JSON of their events, the dead-letter record included, must not stop short of it (the
    recursive encoder did, at about 500 levels, with RecursionError)."""
    half = depth // 2
    text = '{"a": ' * half + "[" * half + '{"$date": 1}' + "]" * half + "}" * half
    doc = json.loads(text)
    original = event(after={"id": 1, "doc": doc, "on": date(2020, 1, 1)})
    line = event_to_json(original)
    assert event_from_json(line).after == {"id": 1, "doc": doc, "on": date(2020, 1, 1)}
    record = json.loads(json.dumps(dead_letter_record(original, "sinks[0] x", "why")))
    assert decode_value(record["event"]["after"]) == original.after


def test_unchanged_round_trips_as_itself() -> None:
    original = event(action="update", after={"id": 1, "big": UNCHANGED})
    restored = event_from_json(event_to_json(original))
    assert restored.after is not None and restored.after["big"] is UNCHANGED
    assert repr(UNCHANGED) == "UNCHANGED" and UNCHANGED != None  # noqa: E711


def test_batcher_groups_transactions_and_splits_huge_ones() -> None:
    batcher = Batcher(max_events=3, max_delay=60)
    out = []
    for pk in range(1, 3):  # transaction A: 2 events
        out.append(batcher.add(event(pk)))
    out.append(batcher.commit("A"))
    assert out == [None, None, None]  # small: waits for more
    for pk in range(3, 9):  # transaction B: 6 events, bigger than a batch
        out.append(batcher.add(event(pk)))
    batches = [b for b in out if b is not None]
    assert [[e.pk for e in b.events] for b in batches] == [[1, 2], [3, 4, 5], [6, 7, 8]]
    assert [b.position for b in batches] == ["A", None, None]  # never a position mid-transaction
    assert batcher.commit("B") is None  # waits up to max_delay for more transactions
    last = batcher.flush()  # the end of B moves the checkpoint, with no events left
    assert last is not None and last.events == () and last.position == "B"


def test_batcher_flushes_after_the_delay_and_for_empty_transactions() -> None:
    batcher = Batcher(max_events=100, max_delay=0)
    assert batcher.flush() is None
    batch = batcher.commit("P")  # a transaction on a filtered-out table: no events
    assert batch is not None and batch.events == () and batch.position == "P"
