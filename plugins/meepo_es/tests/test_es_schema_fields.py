"""renamed_columns / dropped_columns = "rewrite": renamed and dropped columns applied to the
documents already indexed, against a real ES-API server (noida-db, or $MEEPO_TEST_ES_URL)."""

from __future__ import annotations

import json
import os
import subprocess
import time
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
from meepo_core.testing import make_context, meepo_command, run_meepo, write_config

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


def test_renames_in_two_changes_follow_each_other_even_with_late_definitions(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    """a -> b, then b -> c; both changes carry the definition read after the second (as the
    mysql source does when it is behind the server). Replayed: nothing moves again."""
    index = f"{prefix}_items"
    sink, _ = opened(rewriting(url, index), tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "a": "one"}, 1),
                      ev("write", 2, None, {"id": 2, "a": "two"}, 2)), 1))
    late = definition("id", "c")
    to_b = SchemaChange("shop", "items", "alter", None, late, renamed_columns=(("a", "b"),),
                        sequence=10)
    to_c = SchemaChange("shop", "items", "alter", late, late, renamed_columns=(("b", "c"),),
                        sequence=12)
    batch = Batch((ev("write", 5, None, {"id": 5, "b": "five"}, 11),), 2,
                  schema_changes=((0, to_b), (1, to_c)))
    sink.apply(batch)
    sink.apply(batch)
    sink.close()
    assert read_index(index) == {"1": {"id": 1, "c": "one"}, "2": {"id": 2, "c": "two"},
                                 "5": {"id": 5, "c": "five"}}


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
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".meepo/p.json").exists()  # nothing written


@pytest.mark.integration
def test_mariadb_rename_and_drop_reach_the_stored_documents_of_a_running_pipeline(
    mysql_db: Any, es_server: Any, es: Elasticsearch, prefix: str, read_index: Any,
    tmp_path: Path
) -> None:
    """Through the mysql source, while the pipeline runs: a CHANGE COLUMN rewrites the
    stored documents (no row is written), a DROP COLUMN before an INSERT removes the field
    before the new row lands; the index then equals a SELECT of the table, and a replay of
    the whole binlog from the start changes nothing."""
    pytest.importorskip("meepo_mysql", reason="needs the mysql source plugin (meepo-mysql)")
    file, pos = mysql_db.server.execute("SHOW MASTER STATUS", database=None)[0][:2]
    mysql_db.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), qty INT, "
                     "note VARCHAR(10))")
    mysql_db.execute("INSERT INTO items VALUES (1, 'one', 1, 'x'), (2, 'two', 2, 'y'), "
                     "(3, 'three', 3, NULL)")
    index = f"{prefix}_items"
    config = {
        "source": {"type": "mysql", "dsn": mysql_db.server.dsn,
                   "tables": [f"{mysql_db.name}.items"], "start": f"{file}:{pos}"},
        "sinks": [{"type": "elasticsearch", "hosts": [es_server.url],
                   "indices": {f"{mysql_db.name}.items": index},
                   "renamed_columns": "rewrite", "dropped_columns": "rewrite"}],
        "batch_wait": 0.05,
    }
    write_config(tmp_path, {"p": config})
    runner = subprocess.Popen(meepo_command("run", "p"), cwd=tmp_path, env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def document(doc_id: str) -> dict[str, Any] | None:
        if not es.indices.exists(index=index):
            return None
        found = es.options(ignore_status=404).get(index=index, id=doc_id)
        return found.body.get("_source") if found.body.get("found") else None

    def wait_for(doc_id: str, fields: dict[str, Any]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert runner.poll() is None, runner.stderr.read().decode() if runner.stderr else ""
            if document(doc_id) == fields:
                return
            time.sleep(0.05)
        raise AssertionError(f"document {doc_id} is {document(doc_id)}, not {fields}")

    try:
        wait_for("1", {"id": 1, "name": "one", "qty": 1, "note": "x"})
        mysql_db.execute("ALTER TABLE items CHANGE COLUMN name title VARCHAR(40)")
        wait_for("1", {"id": 1, "title": "one", "qty": 1, "note": "x"})
        mysql_db.execute("ALTER TABLE items DROP COLUMN qty")
        mysql_db.execute("INSERT INTO items VALUES (4, 'four', 'z')")
        wait_for("4", {"id": 4, "title": "four", "note": "z"})
    finally:
        runner.terminate()
        runner.wait(30)
        if runner.stderr:
            runner.stderr.close()
    with mysql_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM items")
        names = [d[0] for d in cur.description]
        expected = {str(row[0]): dict(zip(names, row, strict=True)) for row in cur.fetchall()}
    assert expected["1"] == {"id": 1, "title": "one", "note": "x"}
    assert read_index(index) == expected
    assert not (tmp_path / ".meepo/p.dead.jsonl").exists()

    (tmp_path / ".meepo/p.json").unlink()  # replay everything from the start
    again = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert read_index(index) == expected
