"""renamed_columns / dropped_columns = "rewrite": renamed and dropped columns applied to the
documents already indexed, against a real ES-API server (noida-db, or $MEEPO_TEST_ES_URL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from meepo_es.elasticsearch_sink import ElasticsearchSink

from meepo_core import ColumnDefinition, SchemaChange, TableDefinition
from meepo_core.errors import ConfigError
from meepo_core.events import Batch, RowEvent
from meepo_core.options import Options
from meepo_core.plugins import load_registry
from meepo_core.testing import make_context, run_meepo, write_config

STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def ev(action: str, pk: Any, before: Any, after: Any, seq: int) -> RowEvent:
    return RowEvent("shop", "items", action, pk, before, after, {"seq": seq}, STAMP,  # type: ignore[arg-type]
                    None, seq)


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def build(options: dict[str, Any], tmp_path: Path) -> ElasticsearchSink:
    cls = load_registry().lookup("sink", "elasticsearch", "type")
    sink = cls.from_options(Options({"type": "elasticsearch", **options}, "sinks[0]", tmp_path))
    assert isinstance(sink, ElasticsearchSink)
    return sink


def opened(options: dict[str, Any], tmp_path: Path) -> tuple[ElasticsearchSink, Any]:
    sink = build(options, tmp_path)
    context = make_context(tmp_path)
    sink.open(context)
    return sink, context


def definition(*names: str) -> TableDefinition:
    return TableDefinition(tuple(ColumnDefinition(name, "text") for name in names), ("id",))


V1 = definition("id", "a", "c")
#: a renamed to b, c dropped
V2 = definition("id", "b")
#: a added again (a new column that reuses the old name)
V3 = definition("id", "b", "a")

RENAME_AND_DROP = SchemaChange("shop", "items", "alter", V1, V2, renamed_columns=(("a", "b"),),
                               sequence=10)
READD_A = SchemaChange("shop", "items", "alter", V2, V3, sequence=20)


def rewriting(url: str, index: str, **extra: Any) -> dict[str, Any]:
    return {"hosts": [url], "indices": {"shop.items": index}, "renamed_columns": "rewrite",
            "dropped_columns": "rewrite", **extra}


def first_batches() -> list[Batch]:
    """Documents of shape V1 (one in the same batch as the change, before it), the change,
    then a row of shape V2."""
    return [
        Batch((ev("write", 1, None, {"id": 1, "a": "one", "c": "x"}, 1),
               ev("write", 2, None, {"id": 2, "a": "two", "c": "y"}, 2)), 1),
        Batch((ev("write", 3, None, {"id": 3, "a": "three", "c": "z"}, 5),
               ev("write", 4, None, {"id": 4, "b": "four"}, 11)), 2,
              schema_changes=((1, RENAME_AND_DROP),)),
    ]


@pytest.fixture
def url(es_server: Any, es: Elasticsearch) -> str:
    return str(es_server.url)


def test_renamed_and_dropped_columns_rewrite_the_stored_documents_before_the_next_rows(
    url: str, prefix: str, read_index: Any, es: Elasticsearch, tmp_path: Path
) -> None:
    index = f"{prefix}_items"
    sink, context = opened(rewriting(url, index), tmp_path)
    for batch in first_batches():
        sink.apply(batch)
    expected = {"1": {"id": 1, "b": "one"}, "2": {"id": 2, "b": "two"},
                "3": {"id": 3, "b": "three"}, "4": {"id": 4, "b": "four"}}
    assert read_index(index) == expected
    # The rewritten documents keep the version of the row that wrote them.
    assert [es.get(index=index, id=str(i))["_version"] for i in (1, 2, 3, 4)] == [1, 2, 5, 11]

    # A later column reusing the old name, then the whole stream replayed (at-least-once):
    # documents written after the change are newer than it and keep their new "a".
    later = Batch((ev("write", 1, None, {"id": 1, "b": "one", "a": "new"}, 21),), 3,
                  schema_changes=((0, READD_A),))
    sink.apply(later)
    for batch in [*first_batches(), later]:
        sink.apply(batch)
    sink.close()
    context.dead_letters.close()
    assert read_index(index) == {**expected, "1": {"id": 1, "b": "one", "a": "new"}}
    assert dead_letters(tmp_path) == []


def test_a_change_applied_twice_in_one_batch_is_harmless(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    """The delivery engine may hand the same batch back (a retry sends it again whole)."""
    index = f"{prefix}_items"
    sink, _ = opened(rewriting(url, index), tmp_path)
    [first, second] = first_batches()
    sink.apply(first)
    sink.apply(second)
    sink.apply(second)
    sink.close()
    assert read_index(index)["1"] == {"id": 1, "b": "one"}


def test_the_table_rule_names_the_fields_and_versioning_off_rewrites_too(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    index = f"{prefix}_items"
    options = rewriting(url, index, versioning="off",
                        tables={"shop.items": {"rename": {"b": "bee"}, "exclude": ["c"]}})
    sink, _ = opened(options, tmp_path)
    for batch in first_batches():
        sink.apply(batch)
    sink.apply(first_batches()[1])  # replayed
    sink.close()
    assert read_index(index) == {"1": {"id": 1, "bee": "one"}, "2": {"id": 2, "bee": "two"},
                                 "3": {"id": 3, "bee": "three"}, "4": {"id": 4, "bee": "four"}}


def test_keep_is_the_default_old_fields_stay_until_the_row_is_written(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    index = f"{prefix}_items"
    sink, _ = opened({"hosts": [url], "indices": {"shop.items": index}}, tmp_path)
    for batch in first_batches():
        sink.apply(batch)
    sink.close()
    assert read_index(index)["1"] == {"id": 1, "a": "one", "c": "x"}


def test_only_renames_or_only_drops(url: str, prefix: str, read_index: Any,
                                    tmp_path: Path) -> None:
    renames, _ = opened({**rewriting(url, f"{prefix}_r"), "dropped_columns": "keep"}, tmp_path)
    drops, _ = opened({**rewriting(url, f"{prefix}_d"), "renamed_columns": "keep"}, tmp_path)
    for sink in (renames, drops):
        for batch in first_batches():
            sink.apply(batch)
        sink.close()
    assert read_index(f"{prefix}_r")["1"] == {"id": 1, "b": "one", "c": "x"}
    assert read_index(f"{prefix}_d")["1"] == {"id": 1, "a": "one"}


def test_a_swap_is_dead_lettered_and_the_documents_left_alone(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    index = f"{prefix}_items"
    sink, context = opened(rewriting(url, index), tmp_path)
    sink.apply(first_batches()[0])
    swap = SchemaChange("shop", "items", "alter", definition("id", "a", "c"),
                        definition("id", "c", "a"), renamed_columns=(("a", "c"), ("c", "a")),
                        sequence=10)
    sink.apply(Batch((), 2, schema_changes=((0, swap),)))
    sink.close()
    context.dead_letters.close()
    assert read_index(index)["1"] == {"id": 1, "a": "one", "c": "x"}
    [letter] = dead_letters(tmp_path)
    assert "swap or chain" in letter["error"] and "a, c" in letter["error"]


@pytest.mark.parametrize(("options", "message"), [
    ({"renamed_columns": "rename"}, r"sinks\[0\]\.renamed_columns: must be one of"),
    ({"dropped_columns": "rewrite", "indices": {"shop.a": "x", "shop.b": "X"}},
     r"sinks\[0\]\.dropped_columns: \"rewrite\" needs each table in an index of its own .* "
     r"indices shop\.a and shop\.b share 'x'"),
    ({"renamed_columns": "rewrite", "index": "{table}"},
     r"sinks\[0\]\.renamed_columns: .* the index template '\{table\}' lacks \{schema\}"),
    ({"renamed_columns": "rewrite", "indices": {"orders": "orders"}},
     r"sinks\[0\]\.renamed_columns: .* 'orders' is a bare table name"),
])
def test_bad_options_name_the_key(options: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        build({"hosts": ["http://h"], **options}, tmp_path)


def test_a_bad_value_through_the_cli_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text("")
    sink = {"type": "elasticsearch", "hosts": ["http://127.0.0.1:9"], "dropped_columns": "drop"}
    write_config(tmp_path, {"p": {"source": {"type": "jsonl", "path": "events.jsonl"},
                                  "sinks": [sink]}})
    done = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "sinks[0].dropped_columns: must be one of" in line
    assert not (tmp_path / ".meepo").exists() or not list((tmp_path / ".meepo").iterdir())
    assert json.dumps(sink)  # the config written is the one refused
