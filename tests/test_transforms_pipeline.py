"""Transforms in real pipelines through the CLI: the pipeline's chain then each sink's,
dead letters and on_error, the checkpoint past dropped events, config errors with key
paths and positions, and the `meepo transform` dry run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from meepo_core import RowEvent, event_to_json
from meepo_core.testing import run_meepo, write_config

TEST_PLUGINS = Path(__file__).parent / "plugins_for_tests"
ENV = {"PYTHONPATH": str(TEST_PLUGINS), "MEEPO_DISABLE_PLUGINS": "es,kafka,mysql,postgres,redis"}


def user(pk: int, tenant: str, email: str, txid: str, action: Any = "write") -> RowEvent:
    row = {"id": pk, "tenant": tenant, "email": email, "phone": f"+31 6 {pk:08d}"}
    before, after = (row, None) if action == "delete" else (None, row)
    return RowEvent("shop", "users", action, pk, before, after, txid=txid)


def write_events(path: Path, events: list[RowEvent]) -> int:
    text = "".join(event_to_json(event) + "\n" for event in events)
    path.write_text(text, encoding="utf-8")
    return len(text.encode())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


EVENTS = [
    user(1, "acme", "ann@acme.example", "t1"),
    user(2, "test", "qa@test.example", "t1"),
    user(3, "acme", "bob@acme.example", "t2", action="read"),
    user(4, "test", "qa2@test.example", "t3"),  # the last transaction: all dropped
]
ISSUE_PIPELINE = {
    "source": {"type": "jsonl", "path": "in.jsonl"},
    "transforms": [
        {"type": "filter", "where": "row.tenant != 'test' && table != 'audit_tmp'"},
        {"type": "hash", "columns": ["shop.users.email"], "algorithm": "SHA-256",
         "salt": "${PII_SALT}"},
    ],
    "sinks": [
        {"type": "jsonl", "path": "all.jsonl"},
        {"type": "jsonl", "path": "search.jsonl", "transforms": [
            {"type": "drop_columns", "columns": ["shop.users.phone"]},
            {"type": "route", "to": "{schema}_{table}_v2"},
        ]},
    ],
    "checkpoint": "file:checkpoint.json",
}


def salted(value: str) -> str:
    return hashlib.sha256(("pepper" + value).encode()).hexdigest()


def test_the_issues_pipeline(tmp_path: Path) -> None:
    end = write_events(tmp_path / "in.jsonl", EVENTS)
    write_config(tmp_path, {"orders": ISSUE_PIPELINE})
    result = run_meepo("run", "orders", "--once", cwd=tmp_path, env={**ENV, "PII_SALT": "pepper"})
    assert result.returncode == 0, result.stderr
    every = read_jsonl(tmp_path / "all.jsonl")
    assert [(e["action"], e["pk"], e["after"]["email"]) for e in every] == [
        ("write", 1, salted("ann@acme.example")), ("read", 3, salted("bob@acme.example"))]
    assert all("destination" not in e and "phone" in e["after"] for e in every)
    search = read_jsonl(tmp_path / "search.jsonl")
    assert [e["after"] for e in search] == [
        {"id": 1, "tenant": "acme", "email": salted("ann@acme.example")},
        {"id": 3, "tenant": "acme", "email": salted("bob@acme.example")}]
    assert {e["destination"] for e in search} == {"shop_users_v2"}
    # the last transaction was dropped whole: the checkpoint still moved past it
    assert json.loads((tmp_path / "checkpoint.json").read_text())["position"] == {"offset": end}
    assert not (tmp_path / ".meepo" / "orders.dead.jsonl").exists()
    assert " dead_letters=0 dropped=2 position=" in result.stderr  # counted, not silent


def test_dropped_events_are_counted_in_the_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meepo_core import load_pipeline
    from meepo_core.runner import Runner

    write_events(tmp_path / "in.jsonl", EVENTS)
    monkeypatch.setenv("PII_SALT", "pepper")
    write_config(tmp_path, {"orders": {**ISSUE_PIPELINE, "sinks": [
        {"type": "memory", "transforms": [{"type": "filter", "where": "action != 'read'"}]}]}})
    runner = Runner(load_pipeline("orders", tmp_path / "pyproject.toml"))
    runner.run(once=True)
    lines = [line for line in runner.metrics.prometheus().splitlines()
             if line.startswith("meepo_transform_dropped_total")]
    assert lines == [
        'meepo_transform_dropped_total{pipeline="orders",transform="sinks[0] memory '
        'transforms[0] filter"} 1',
        'meepo_transform_dropped_total{pipeline="orders",transform="transforms[0] filter"} 2',
    ]


def test_an_event_a_transform_raises_on_is_a_dead_letter(tmp_path: Path) -> None:
    events = [user(12, "a", "x", "t1"), user(13, "a", "y", "t1"), user(14, "a", "z", "t2")]
    end = write_events(tmp_path / "in.jsonl", events)
    write_config(tmp_path, {"p": {
        "source": {"type": "jsonl", "path": "in.jsonl"},
        "sinks": [{"type": "jsonl", "path": "out.jsonl", "transforms": [
            {"type": "python", "callable": "stamp_transform:split_by_half"}]}],
        "checkpoint": "file:checkpoint.json"}})
    result = run_meepo("run", "p", "--once", cwd=tmp_path, env=ENV)
    assert result.returncode == 0, result.stderr
    assert [(e["pk"], e["table"]) for e in read_jsonl(tmp_path / "out.jsonl")] == [
        (12, "users"), (12, "users_copy"), (14, "users"), (14, "users_copy")]
    (letter,) = read_jsonl(tmp_path / ".meepo" / "p.dead.jsonl")
    assert letter["sink"] == "sinks[0] jsonl transforms[0] python"
    assert letter["error"] == "ValueError: thirteen is unlucky"
    assert letter["event"]["pk"] == 13
    assert "dead_letters=1" in result.stderr
    assert json.loads((tmp_path / "checkpoint.json").read_text())["position"] == {"offset": end}


def test_on_error_stop_stops_before_the_batch(tmp_path: Path) -> None:
    events = [user(12, "a", "x", "t1"), user(13, "a", "y", "t2")]
    write_events(tmp_path / "in.jsonl", events)
    first = len(event_to_json(events[0]).encode()) + 1
    write_config(tmp_path, {"p": {
        "source": {"type": "jsonl", "path": "in.jsonl"}, "batch_wait": 0,
        "transforms": [{"type": "python", "callable": "stamp_transform:split_by_half",
                        "on_error": "stop"}],
        "sinks": [{"type": "jsonl", "path": "out.jsonl"}], "checkpoint": "file:cp.json"}})
    result = run_meepo("run", "p", "--once", cwd=tmp_path, env=ENV)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("meepo: error:")]
    assert errors == ["meepo: error: transforms[0] python: failed on event users_write pk=13: "
                      'ValueError: thirteen is unlucky; stopped (on_error = "stop") without '
                      "checkpointing this batch"], result.stderr
    assert "Traceback" not in result.stderr
    saved = json.loads((tmp_path / "cp.json").read_text())["position"] if (
        tmp_path / "cp.json").exists() else None
    assert saved in (None, {"offset": first})
    assert not (tmp_path / ".meepo" / "p.dead.jsonl").exists()


@pytest.mark.parametrize(("transforms", "where", "fragments"), [
    ([{"type": "filter", "where": "row.tenant != 'test' &&"}], "transforms[0].where",
     ["syntax error at 1:24 in \"row.tenant != 'test' &&\": mismatched input '<EOF>'"]),
    ([{"type": "filter", "where": "tabel == 'x'"}], "transforms[0].where",
     ["unknown name 'tabel' at 1:1", "can use schema, table, action, pk, before, after"]),
    ([{"type": "filter", "where": "action == 'write'"},
      {"type": "filter", "where": "table > 1"}], "transforms[1].where",
     ["type error in 'table > 1': No such overload"]),
    ([{"type": "filter", "where": "table"}], "transforms[0].where",
     ["'table' gives str, not true or false"]),
    ([{"type": "route", "to": "{schema}.{tabel}"}], "transforms[0].to",
     ["unknown field {tabel}"]),
    ([{"type": "hash", "columns": ["email"], "salt": "s"}], "transforms[0].columns[0]",
     ["must be schema.table.column"]),
    ([{"type": "hash", "columns": ["shop.users.email"], "salt": "s", "algorithm": "SHA256"}],
     "transforms[0].algorithm", ["must be one of 'MD5'"]),
    ([{"type": "upper"}], "transforms[0].type", ["unknown transform type 'upper'; available: "
                                                 "drop_columns, filter, hash, keep_columns"]),
    ([{"type": "python", "callable": "no_such_module:f"}], "transforms[0].callable",
     ["cannot import 'no_such_module:f': ModuleNotFoundError"]),
    ([{"type": "mask", "columns": ["s.t.c"], "keep_first": 2}], "transforms[0].keep_first",
     ["does not apply to mode = 'fixed'"]),
])
def test_config_errors_name_the_key_path(
    tmp_path: Path, transforms: list[dict[str, Any]], where: str, fragments: list[str]
) -> None:
    write_events(tmp_path / "in.jsonl", EVENTS)
    write_config(tmp_path, {"orders": {
        "source": {"type": "jsonl", "path": "in.jsonl"},
        "sinks": [{"type": "print"}, {"type": "jsonl", "path": "o.jsonl",
                                      "transforms": transforms}]}})
    result = run_meepo("run", "orders", "--once", cwd=tmp_path, env=ENV)
    assert result.returncode == 2, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("meepo: error:")]
    assert line.startswith(f"meepo: error: tool.meepo.pipelines.orders.sinks[1].{where}: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_pipeline_level_errors_name_the_pipeline_key(tmp_path: Path) -> None:
    write_config(tmp_path, {"orders": {
        "source": {"type": "jsonl", "path": "in.jsonl"}, "sinks": [{"type": "print"}],
        "transforms": [{"type": "filter", "where": "after.x > 1", "on_eror": "stop"}]}})
    result = run_meepo("check", "orders", cwd=tmp_path, env=ENV)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "meepo: error: tool.meepo.pipelines.orders.transforms[0].on_eror: unknown option; "
        "did you mean 'on_error'? valid options here: on_error, where")


def test_dry_run_prints_what_each_sink_would_receive(tmp_path: Path) -> None:
    write_events(tmp_path / "audit.jsonl", [*EVENTS, user(13, "acme", "z", "t4")])
    pipeline = {**ISSUE_PIPELINE, "sinks": [
        *ISSUE_PIPELINE["sinks"],
        {"type": "print", "transforms": [
            {"type": "python", "callable": "stamp_transform:split_by_half"}]}]}
    write_config(tmp_path, {"orders": pipeline})
    env = {**ENV, "PII_SALT": "pepper"}
    result = run_meepo("transform", "orders", "--input", "audit.jsonl", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("#")] == [
        "# sinks[0] jsonl: 3 of 5 events", "# sinks[1] jsonl: 3 of 5 events",
        "# sinks[2] print: 1 of 5 events"]  # 1 kept, 3 dropped, 13 raised
    search = [json.loads(line) for line in lines[5:8]]
    assert [(e["pk"], e["destination"], "phone" in e["after"]) for e in search] == [
        (1, "shop_users_v2", False), (3, "shop_users_v2", False),
        (13, "shop_users_v2", False)]
    assert ("meepo: sinks[2] print transforms[0] python: would dead-letter users_write "
            "pk=13: ValueError: thirteen is unlucky") in result.stderr
    # a dry run writes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.jsonl", "pyproject.toml"]
    one = run_meepo("transform", "orders", "--input", "audit.jsonl", "--sink", "sinks[1]",
                    cwd=tmp_path, env=env)
    assert one.stdout.splitlines()[0] == "# sinks[1] jsonl: 3 of 5 events"
    bad = run_meepo("transform", "orders", "--input", "audit.jsonl", "--sink", "jsonl",
                    cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "meepo: error: --sink: 'jsonl' names more than one sink of pipeline orders; its "
        "sinks: sinks[0] jsonl, sinks[1] jsonl, sinks[2] print")


def test_a_memory_sources_events_stay_as_the_caller_made_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's transforms change a source's fresh events in place (jsonl, above);
    the ``memory`` source yields its caller's objects, which must come out unchanged."""
    from meepo_core import load_pipeline
    from meepo_core.builtin.memory import channel
    from meepo_core.runner import Runner

    monkeypatch.setenv("PII_SALT", "pepper")
    write_config(tmp_path, {"orders": {**ISSUE_PIPELINE, "source": {"type": "memory",
                                                                     "name": "given"},
                                       "sinks": [{"type": "memory", "name": "got"}]}})
    given = [user(1, "acme", "ann@acme.example", "t1"), user(2, "acme", "bob@acme.example",
                                                             "t1")]
    channel("given").publish(given, position=1)
    Runner(load_pipeline("orders", tmp_path / "pyproject.toml")).run(once=True)
    assert [e.after["email"] for e in given if e.after] == ["ann@acme.example",
                                                           "bob@acme.example"]
    got = channel("got").events
    assert [e.after["email"] for e in got if e.after] == [salted("ann@acme.example"),
                                                         salted("bob@acme.example")]
    assert not any(g is e for g in got for e in given)
