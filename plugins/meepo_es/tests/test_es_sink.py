"""The elasticsearch sink against a real ES-API server (noida-db, or $MEEPO_TEST_ES_URL)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from meepo_es.elasticsearch_sink import ElasticsearchSink

from meepo_core import UNCHANGED
from meepo_core.errors import ConfigError, SinkError
from meepo_core.events import Batch, RowEvent
from meepo_core.options import Options
from meepo_core.plugins import load_registry
from meepo_core.testing import (
    SinkContract,
    contract_row,
    make_context,
    run_meepo,
    write_config,
)

STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def build(options: dict[str, Any], tmp_path: Path, path: str = "sinks[0]") -> ElasticsearchSink:
    cls = load_registry().lookup("sink", "elasticsearch", "type")
    sink = cls.from_options(Options({"type": "elasticsearch", **options}, path, tmp_path))
    assert isinstance(sink, ElasticsearchSink)
    return sink


def opened(options: dict[str, Any], tmp_path: Path) -> tuple[ElasticsearchSink, Any]:
    sink = build(options, tmp_path)
    context = make_context(tmp_path)
    sink.open(context)
    return sink, context


def ev(action: str, pk: Any, before: Any, after: Any, seq: int | None, *,
       table: str = "items", schema: str = "shop") -> RowEvent:
    return RowEvent(schema, table, action, pk, before, after, {"seq": seq}, STAMP,  # type: ignore[arg-type]
                    None, seq)


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestElasticsearchSinkContract(SinkContract):
    sink_type = "elasticsearch"

    @pytest.fixture(autouse=True)
    def _server(self, es: Elasticsearch, prefix: str, read_index: Any, es_server: Any) -> None:
        self.url = es_server.url
        self.prefix = prefix
        self.read = read_index

    def sink_options(self) -> dict[str, Any]:
        return {"hosts": [self.url], "index": self.prefix + "_{table}"}

    def observable_state(self) -> Any:
        return self.read(f"{self.prefix}_items")

    def poison_batch(self) -> Batch:
        """A mapping conflict: ``updated_at`` is a date in the index."""
        return Batch((self.contract_event(
            "write", 9, {**contract_row(9, "nine"), "updated_at": "not a date"}),), 6)

    def test_contract_end_state_is_the_table(self) -> None:
        self.apply_all(self.batches())
        stamp = "2026-01-01T00:00:00+00:00"
        assert self.observable_state() == {
            "1": {"id": 1, "name": "uno", "price": "1.50", "updated_at": stamp},
            "2": {"id": 2, "name": "deux", "price": "2.50", "updated_at": stamp},
        }


@pytest.fixture
def url(es_server: Any, es: Elasticsearch) -> str:
    return str(es_server.url)


def test_documents_follow_writes_updates_and_deletes(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "indices": {"shop.items": f"{prefix}_items"}}, tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "n": "a"}, 1),
                      ev("write", 2, None, {"id": 2, "n": "b"}, 2)), 1))
    sink.apply(Batch((ev("update", 1, {"id": 1, "n": "a"}, {"id": 1, "n": "A"}, 3),
                      ev("delete", 2, {"id": 2, "n": "b"}, None, 4)), 2))
    sink.close()
    assert read_index(f"{prefix}_items") == {"1": {"id": 1, "n": "A"}}


def test_a_route_transforms_destination_is_the_index(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "indices": {"shop.items": f"{prefix}_items"}}, tmp_path)
    routed = dataclasses.replace(ev("write", 1, None, {"id": 1, "n": "a"}, 1),
                                 destination=f"{prefix}_routed")
    sink.apply(Batch((routed, ev("write", 2, None, {"id": 2, "n": "b"}, 2),
                      dataclasses.replace(ev("delete", 1, {"id": 1, "n": "a"}, None, 3),
                                          destination=f"{prefix}_routed"),
                      dataclasses.replace(ev("write", 3, None, {"id": 3, "n": "c"}, 4),
                                          destination=f"{prefix}_routed")), 1))
    sink.close()
    assert read_index(f"{prefix}_routed") == {"3": {"id": 3, "n": "c"}}
    assert read_index(f"{prefix}_items") == {"2": {"id": 2, "n": "b"}}


def test_an_older_batch_replayed_after_a_newer_one_never_regresses(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    old = Batch((ev("write", 1, None, {"id": 1, "v": "old"}, 10),
                 ev("write", 2, None, {"id": 2, "v": "old"}, 11)), 1)
    new = Batch((ev("update", 1, {"id": 1, "v": "old"}, {"id": 1, "v": "new"}, 20),), 2)
    sink.apply(old)
    sink.apply(new)
    sink.apply(old)  # replayed out of order
    sink.apply(new)  # and again
    sink.close()
    assert read_index(f"{prefix}_items") == {"1": {"id": 1, "v": "new"}, "2": {"id": 2, "v": "old"}}
    assert sink.stale == 3  # conflicts counted as applied, not as failures
    assert dead_letters(tmp_path) == []


def test_a_replayed_write_does_not_resurrect_a_deleted_document(
    url: str, prefix: str, read_index: Any, tmp_path: Path, require_tombstones: None
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    write = Batch((ev("write", 1, None, {"id": 1}, 5),), 1)
    sink.apply(write)
    sink.apply(Batch((ev("delete", 1, {"id": 1}, None, 6),), 2))
    sink.apply(write)  # an older batch arriving late, inside the index.gc_deletes window
    sink.close()
    assert read_index(f"{prefix}_items") == {}


def test_an_update_that_changes_the_pk_moves_the_document(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "n": "x"}, 1),
                      ev("write", 5, None, {"id": 5, "n": "y"}, 2)), 1))
    sink.apply(Batch((ev("update", 2, {"id": 1, "n": "x"}, {"id": 2, "n": "x"}, 3),), 2))
    # composite key, pk columns named in config: (a, b) = ("k", 1) -> ("k", 2)
    sink.close()
    assert read_index(f"{prefix}_items") == {"2": {"id": 2, "n": "x"}, "5": {"id": 5, "n": "y"}}
    composite, _ = opened({"hosts": [url], "index": prefix + "_{table}",
                           "tables": {"shop.pairs": {"pk_columns": ["a", "b"]}}}, tmp_path)
    composite.apply(Batch((ev("write", ("k", 1), None, {"a": "k", "b": 1, "v": 0}, 4,
                              table="pairs"),), 3))
    composite.apply(Batch((ev("update", ("k", 2), {"a": "k", "b": 1, "v": 0},
                              {"a": "k", "b": 2, "v": 0}, 5, table="pairs"),), 4))
    composite.close()
    assert read_index(f"{prefix}_pairs") == {"k|2": {"a": "k", "b": 2, "v": 0}}


def test_a_snapshot_row_indexes_the_current_row(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "n": "old"}, 1),), 1))
    sink.apply(Batch((ev("read", 1, None, {"id": 1, "n": "current"}, 2),
                      ev("read", 2, None, {"id": 2, "n": "two"}, 3)), 2))
    sink.close()
    assert read_index(f"{prefix}_items") == {"1": {"id": 1, "n": "current"},
                                             "2": {"id": 2, "n": "two"}}


BODY = "".join(chr(ord("a") + i % 26) for i in range(100_000))


def test_unchanged_fields_keep_the_stored_value(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}",
                      "tables": {"shop.items": {"rename": {"body": "content"}}}}, tmp_path)
    batches = [
        Batch((ev("write", 1, None, {"id": 1, "title": "first", "body": BODY}, 1),), 1),
        Batch((ev("update", 1, {"id": 1}, {"id": 1, "title": "second", "body": UNCHANGED}, 2),),
              2),
    ]
    for _ in range(2):  # and a replay of both
        for batch in batches:
            sink.apply(batch)
        assert read_index(f"{prefix}_items") == {
            "1": {"id": 1, "title": "second", "content": BODY}}
    sink.close()
    assert dead_letters(tmp_path) == []


def test_unchanged_fields_come_from_earlier_events_of_the_batch(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    sink.apply(Batch((
        ev("write", 1, None, {"id": 1, "title": "first", "body": "b1"}, 1),
        ev("update", 1, {"id": 1}, {"id": 1, "title": "second", "body": UNCHANGED}, 2),
        ev("update", 1, {"id": 1}, {"id": 1, "title": "third", "body": UNCHANGED}, 3),
        ev("update", 7, {"id": 1}, {"id": 7, "title": "moved", "body": UNCHANGED}, 4),
    ), 1))
    sink.close()
    assert read_index(f"{prefix}_items") == {"7": {"id": 7, "title": "moved", "body": "b1"}}
    assert dead_letters(tmp_path) == []


def test_unchanged_fields_follow_a_key_change(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "title": "first", "body": BODY}, 1),), 1))
    sink.apply(Batch((ev("update", 5, {"id": 1},
                         {"id": 5, "title": "moved", "body": UNCHANGED}, 2),), 2))
    sink.close()
    assert read_index(f"{prefix}_items") == {"5": {"id": 5, "title": "moved", "body": BODY}}


def test_unchanged_fields_of_a_missing_document_are_dead_lettered(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, context = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    sink.apply(Batch((ev("write", 2, None, {"id": 2, "title": "two", "body": "b"}, 1),), 1))
    sink.apply(Batch((ev("update", 1, {"id": 1}, {"id": 1, "title": "x", "body": UNCHANGED}, 2),
                      ev("update", 2, {"id": 2}, {"id": 2, "title": "deux", "body": UNCHANGED},
                         3)), 2))
    sink.close()
    context.dead_letters.close()
    assert read_index(f"{prefix}_items") == {"2": {"id": 2, "title": "deux", "body": "b"}}
    [letter] = dead_letters(tmp_path)
    assert letter["event"]["pk"] == 1
    assert letter["error"] == (
        f"document {prefix}_items/1 is not in the index, and the event lacks the value of body "
        "(unchanged, not sent by the source); backfill the table, or make the source send "
        "whole rows (PostgreSQL: REPLICA IDENTITY FULL)")


def test_an_older_event_with_unchanged_fields_never_regresses(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "title": "new", "body": "b"}, 10),), 1))
    sink.apply(Batch((ev("update", 1, {"id": 1}, {"id": 1, "title": "old", "body": UNCHANGED},
                         5),), 2))
    sink.close()
    assert read_index(f"{prefix}_items") == {"1": {"id": 1, "title": "new", "body": "b"}}
    assert sink.stale == 1 and dead_letters(tmp_path) == []


def test_composite_ids_use_the_configured_separator(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}", "id_separator": "::"},
                     tmp_path)
    sink.apply(Batch((ev("write", ("eu", 7), None, {"region": "eu", "n": 7}, 1),), 1))
    sink.close()
    assert list(read_index(f"{prefix}_items")) == ["eu::7"]


def test_values_convert_predictably(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    row = {
        "id": 1,
        "price": Decimal("12.50"),
        "naive": datetime(2026, 5, 6, 7, 8, 9, 120000),
        "aware": datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC),
        "day": date(2026, 5, 6),
        "clock": time(7, 8, 9),
        "duration": timedelta(hours=-1, minutes=-30),
        "blob": b"\x00\xffmeepo",
        "tags": {"b", "a"},
        "doc": {"nested": ["x", Decimal("0.1")]},
        "nothing": None,
        "flag": True,
    }
    expected = {
        "id": 1,
        "price": "12.50",
        "naive": "2026-05-06T07:08:09.120000+08:00",
        "aware": "2026-05-06T07:08:09+00:00",
        "day": "2026-05-06",
        "clock": "07:08:09",
        "duration": "-01:30:00",
        "blob": "AP9tZWVwbw==",
        "tags": ["a", "b"],
        "doc": {"nested": ["x", "0.1"]},
        "nothing": None,
        "flag": True,
    }
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}",
                      "timezone": "Asia/Shanghai"}, tmp_path)
    sink.apply(Batch((ev("write", 1, None, row, 1),), 1))
    sink.close()
    assert read_index(f"{prefix}_items") == {"1": expected}
    as_float, _ = opened({"hosts": [url], "index": prefix + "_{table}", "decimal": "float"},
                         tmp_path)
    as_float.apply(Batch((ev("write", 1, None, {"id": 1, "price": Decimal("12.50")}, 2),), 2))
    as_float.close()
    assert read_index(f"{prefix}_items") == {"1": {"id": 1, "price": 12.5}}


def test_a_value_that_cannot_be_indexed_is_dead_lettered_not_altered(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, context = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "x": float("nan")}, 1),
                      ev("write", 2, None, {"id": 2, "x": 1.5}, 2)), 1))
    sink.close()
    context.dead_letters.close()
    assert read_index(f"{prefix}_items") == {"2": {"id": 2, "x": 1.5}}
    [letter] = dead_letters(tmp_path)
    assert letter["event"]["pk"] == 1 and "not finite" in letter["error"]
    assert context.metrics.failures[("sinks[0] elasticsearch", "dead_letter")] == 1


def test_a_value_nested_too_deep_is_dead_lettered_and_the_rest_indexed(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    deep: list[Any] = []
    for _ in range(5_000):
        deep = [deep]
    sink, context = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "x": deep}, 1),
                      ev("write", 2, None, {"id": 2, "x": [1, 2]}, 2)), 1))
    sink.close()
    context.dead_letters.close()
    assert read_index(f"{prefix}_items") == {"2": {"id": 2, "x": [1, 2]}}
    [letter] = dead_letters(tmp_path)
    assert letter["event"]["pk"] == "1"  # the record keeps such an event as repr text
    assert letter["error"].startswith("conversion: a value nested deeper than Python's stack")


def test_include_exclude_and_rename_shape_the_document(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({
        "hosts": [url], "index": prefix + "_{table}",
        "tables": {
            "shop.users": {"exclude": ["password"], "rename": {"mail": "email"}},
            "items": {"include": ["id", "title"]},  # a bare table name matches any schema
        },
    }, tmp_path)
    sink.apply(Batch((
        ev("write", 1, None, {"id": 1, "mail": "a@b.c", "password": "s3cret"}, 1, table="users"),
        ev("write", 1, None, {"id": 1, "title": "t", "cost": 3}, 2),
    ), 1))
    sink.close()
    assert read_index(f"{prefix}_users") == {"1": {"id": 1, "email": "a@b.c"}}
    assert read_index(f"{prefix}_items") == {"1": {"id": 1, "title": "t"}}


def test_mappings_and_settings_apply_at_index_creation_from_config_and_file(
    url: str, prefix: str, es: Elasticsearch, tmp_path: Path
) -> None:
    mapping_file = tmp_path / "users.json"
    mapping_file.write_text(json.dumps(
        {"mappings": {"properties": {"email": {"type": "keyword"}}}}))
    sink, _ = opened({
        "hosts": [url], "index": prefix + "_{table}",
        "settings": {"index": {"gc_deletes": "10m"}},
        "tables": {
            "shop.users": {"mappings": "users.json"},
            "shop.items": {"mappings": {"properties": {"qty": {"type": "integer"}}},
                           "settings": {"number_of_shards": 1}},
        },
    }, tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "email": "a@b.c"}, 1, table="users"),
                      ev("write", 1, None, {"id": 1, "qty": 3}, 2)), 1))
    sink.close()
    users = es.indices.get(index=f"{prefix}_users").body[f"{prefix}_users"]
    items = es.indices.get(index=f"{prefix}_items").body[f"{prefix}_items"]
    assert users["mappings"]["properties"]["email"] == {"type": "keyword"}
    assert items["mappings"]["properties"]["qty"] == {"type": "integer"}
    assert users["settings"]["index"]["gc_deletes"] == "10m"
    assert items["settings"]["index"]["number_of_shards"] == "1"
    assert items["settings"]["index"]["gc_deletes"] == "10m"  # sink-wide settings merge in


def test_a_real_mapping_error_goes_to_the_dead_letters_and_is_counted(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, context = opened({
        "hosts": [url], "index": prefix + "_{table}",
        "tables": {"shop.items": {"mappings": {"properties": {"qty": {"type": "integer"}}}}},
    }, tmp_path)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "qty": 3}, 1),
                      ev("write", 2, None, {"id": 2, "qty": "lots"}, 2),
                      ev("write", 3, None, {"id": 3, "qty": 4}, 3)), 1))
    sink.apply(Batch((ev("write", 2, None, {"id": 2, "qty": "lots"}, 2),), 1))  # replayed
    sink.close()
    context.dead_letters.close()
    assert read_index(f"{prefix}_items") == {"1": {"id": 1, "qty": 3}, "3": {"id": 3, "qty": 4}}
    letters = dead_letters(tmp_path)
    assert [letter["event"]["pk"] for letter in letters] == [2, 2]
    assert letters[0]["sink"] == "sinks[0] elasticsearch"
    assert "qty" in letters[0]["error"] and "HTTP 400" in letters[0]["error"]
    assert context.metrics.failures[("sinks[0] elasticsearch", "dead_letter")] == 2


def test_an_event_without_sequence_fails_clearly_unless_versioning_is_off(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}"}, tmp_path)
    with pytest.raises(SinkError, match=r'has no sequence.*versioning = "off"') as info:
        sink.apply(Batch((ev("write", 1, None, {"id": 1}, None),), 1))
    assert info.value.retryable is False
    sink.close()
    plain, _ = opened({"hosts": [url], "index": prefix + "_{table}", "versioning": "off"},
                      tmp_path)
    plain.apply(Batch((ev("write", 1, None, {"id": 1, "v": 1}, None),
                       ev("update", 1, {"id": 1, "v": 1}, {"id": 1, "v": 2}, None)), 1))
    plain.close()
    assert read_index(f"{prefix}_items") == {"1": {"id": 1, "v": 2}}


def test_bulk_requests_split_by_count_and_bytes(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    sink, _ = opened({"hosts": [url], "index": prefix + "_{table}", "bulk_actions": 3,
                      "bulk_bytes": 4096}, tmp_path)
    calls: list[int] = []
    real_bulk = sink.client.bulk

    def counting_bulk(**kwargs: Any) -> Any:  # a spy: the real request still goes out
        calls.append(len(kwargs["operations"]))
        return real_bulk(**kwargs)

    sink.client.bulk = counting_bulk  # type: ignore[method-assign]
    sink.apply(Batch(tuple(ev("write", i, None, {"id": i}, i) for i in range(1, 8)), 1))
    assert calls == [6, 6, 2]  # 3 + 3 + 1 actions (index lines + document lines)
    calls.clear()
    big = "x" * 1500
    sink.apply(Batch(tuple(ev("write", i, None, {"id": i, "b": big}, 10 + i)
                           for i in range(1, 5)), 2))
    assert calls == [4, 4]  # two ~1.5 KB documents fill the 4 KiB request
    sink.close()
    assert len(read_index(f"{prefix}_items")) == 7


def test_check_names_unreachable_hosts(tmp_path: Path) -> None:
    from meepo_testkit.servers import free_port

    sink = build({"hosts": [f"http://127.0.0.1:{free_port()}"], "request_timeout": 2}, tmp_path)
    [problem] = sink.check()
    assert problem.startswith("cannot reach http://127.0.0.1:") and "hosts" in problem


@pytest.mark.parametrize(("options", "message"), [
    ({}, r"sinks\[0\]\.hosts: required"),
    ({"hosts": ["es:9200"]}, r"sinks\[0\]\.hosts\[0\]: must be a URL"),
    ({"hosts": ["http://h"], "username": "u"}, r"sinks\[0\]\.password: username and password"),
    ({"hosts": ["http://h"], "index": "{db}_{table}"}, r"sinks\[0\]\.index: bad template"),
    ({"hosts": ["http://h"], "timezone": "Mars/Base"}, r"sinks\[0\]\.timezone: unknown time zone"),
    ({"hosts": ["http://h"], "decimal": "double"}, r"sinks\[0\]\.decimal: must be one of"),
    ({"hosts": ["http://h"], "tables": {"shop.a": {"mappings": "missing.json"}}},
     r"sinks\[0\]\.tables\.shop\.a\.mappings: cannot read"),
    ({"hosts": ["http://h"], "tables": {"shop.a": {"inclde": ["id"]}}},
     r"sinks\[0\]\.tables\.shop\.a\.inclde: unknown option"),
    ({"hosts": ["http://h"], "ca_certs": "nope.pem"}, r"sinks\[0\]\.ca_certs: file .* not exist"),
    ({"hosts": ["http://h"], "bulk_actions": 0}, r"sinks\[0\]\.bulk_actions: must be at least 1"),
])
def test_bad_options_name_the_key(options: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        build(options, tmp_path)


def test_through_the_cli_a_mapping_error_is_recorded_before_the_checkpoint(
    url: str, prefix: str, read_index: Any, tmp_path: Path
) -> None:
    """meepo run --once from a jsonl log: the bad row lands in the dead-letter file, the
    good ones in the index, and only then is the checkpoint written."""
    from meepo_core.serialization import event_to_json

    log = tmp_path / "events.jsonl"
    log.write_text("".join(event_to_json(e) + "\n" for e in (
        ev("write", 1, None, {"id": 1, "qty": 1}, 1),
        ev("write", 2, None, {"id": 2, "qty": "bad"}, 2),
        ev("write", 3, None, {"id": 3, "qty": 3}, 3),
    )))
    sink = {"type": "elasticsearch", "hosts": [url], "index": prefix + "_{table}",
            "tables": {"shop.items": {"mappings": {"properties": {"qty": {"type": "long"}}}}}}
    write_config(tmp_path, {"p": {"source": {"type": "jsonl", "path": "events.jsonl"},
                                  "sinks": [sink]}})
    done = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(read_index(f"{prefix}_items")) == ["1", "3"]
    [letter] = [json.loads(x) for x in (tmp_path / ".meepo/p.dead.jsonl").read_text().splitlines()]
    assert letter["event"]["pk"] == 2 and letter["sink"] == "sinks[0] elasticsearch"
    checkpoint = json.loads((tmp_path / ".meepo/p.json").read_text())
    assert checkpoint["position"] == {"offset": log.stat().st_size}

    # If the dead letter cannot be recorded, the run fails and the checkpoint stays put.
    (tmp_path / "blocked").write_text("a file, not a directory")
    write_config(tmp_path, {"q": {"source": {"type": "jsonl", "path": "events.jsonl"},
                                  "sinks": [{**sink, "index": prefix + "_q_{table}"}],
                                  "dead_letter": "file:blocked/dead.jsonl",
                                  "max_retries": 1, "retry_backoff": 0.05}})
    failed = run_meepo("run", "q", "--once", cwd=tmp_path)
    assert failed.returncode == 1
    assert "cannot write dead letter" in failed.stderr
    assert not (tmp_path / ".meepo/q.json").exists()



def test_schema_changes_create_the_index_map_new_fields_and_truncate(
    url: str, prefix: str, read_index: Any, es: Elasticsearch, tmp_path: Path
) -> None:
    from meepo_core import SchemaChange
    from meepo_core.testing.schema_contract import CONTRACT_DEFINITION, EVOLVED_DEFINITION

    index = f"{prefix}_items"
    sink, _ = opened({"hosts": [url], "indices": {"shop.items": index}}, tmp_path)
    created = SchemaChange("shop", "items", "create", None, CONTRACT_DEFINITION, sequence=1)
    sink.apply(Batch((), 1, schema_changes=((0, created),)))
    assert es.indices.exists(index=index)  # before any document
    added = SchemaChange("shop", "items", "alter", CONTRACT_DEFINITION, EVOLVED_DEFINITION,
                         sequence=2)
    sink.apply(Batch((ev("write", 1, None, {"id": 1, "note": "new field"}, 3),), 2,
                     schema_changes=((0, added),)))
    assert read_index(index) == {"1": {"id": 1, "note": "new field"}}
    assert "note" in es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    emptied = SchemaChange("shop", "items", "truncate", EVOLVED_DEFINITION,
                           EVOLVED_DEFINITION, sequence=4)
    sink.apply(Batch((ev("write", 2, None, {"id": 2, "note": "after"}, 5),), 3,
                     schema_changes=((0, emptied),)))
    sink.close()
    assert read_index(index) == {"2": {"id": 2, "note": "after"}}
    assert dead_letters(tmp_path) == []
