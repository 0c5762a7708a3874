"""Table maps are parsed (and their row decoders built) once per definition, keyed by the
event's bytes after the table id: repeated statements on a table reuse one parse, a changed
definition (ALTER TABLE) is parsed anew, and a new table id for the same definition reuses
it."""

from __future__ import annotations

from typing import Any

import pytest
from meepo_mysql import tablemap


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the real table-map parses (a counting wrapper, not a fake)."""
    seen: list[str] = []
    original = tablemap.parse_table_map

    def counting(definition: bytes, mariadb: bool) -> tablemap.TableMap:
        parsed = original(definition, mariadb)
        seen.append(parsed.table)
        return parsed

    monkeypatch.setattr(tablemap, "parse_table_map", counting)
    return seen


def test_repeated_statements_reuse_one_parse(harness: Any, parses: list[str]) -> None:
    harness.execute("CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10))",
                    "CREATE TABLE b (id INT PRIMARY KEY, w INT)")
    start = harness.end()
    for i in range(1, 51):
        harness.execute(f"INSERT INTO a VALUES ({i}, 'x{i}')", f"INSERT INTO b VALUES ({i}, {i})")
    events, _ = harness.drain(None, start=start)
    assert [(e.table, e.pk) for e in events] == [
        (t, i) for i in range(1, 51) for t in ("a", "b")
    ]
    assert events[-2].after == {"id": 50, "v": "x50"} and events[-1].after == {"id": 50, "w": 50}
    assert sorted(parses) == ["a", "b"]  # 100 table maps, two parses


def test_alter_table_is_parsed_anew_and_decoded_with_the_new_columns(
    harness: Any, parses: list[str]
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    start = harness.end()
    harness.execute(
        "INSERT INTO t VALUES (1, 10)",
        "ALTER TABLE t CHANGE v v VARCHAR(20)",  # same name, other type
        "INSERT INTO t VALUES (2, 'twenty')",
        "ALTER TABLE t RENAME COLUMN v TO label",  # same type, other name
        "INSERT INTO t VALUES (3, 'thirty')",
        "ALTER TABLE t ADD COLUMN extra INT DEFAULT 7",
        "INSERT INTO t (id, label) VALUES (4, 'forty')",
        "UPDATE t SET label = 'one' WHERE id = 1",
    )
    events, _ = harness.drain(None, start=start)
    assert [e.after for e in events] == [
        {"id": 1, "v": 10},
        {"id": 2, "v": "twenty"},
        {"id": 3, "label": "thirty"},
        {"id": 4, "label": "forty", "extra": 7},
        {"id": 1, "label": "one", "extra": 7},
    ]
    assert len(parses) == 4  # one parse per definition; the last serves two statements


def test_a_new_table_id_for_the_same_definition_reuses_its_parse(
    harness: Any, parses: list[str]
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    start = harness.end()
    harness.execute("INSERT INTO t VALUES (1, 1)", "FLUSH TABLES",  # reopened: a new table id
                    "INSERT INTO t VALUES (2, 2)", "INSERT INTO t VALUES (3, 3)")
    events, _ = harness.drain(None, start=start)
    assert [e.after for e in events] == [{"id": i, "v": i} for i in (1, 2, 3)]
    assert parses == ["t"]
