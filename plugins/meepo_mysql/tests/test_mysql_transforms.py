"""Transforms on a real MariaDB pipeline: snapshot rows and streamed rows go through the
same transforms, and `meepo check` warns about columns the transforms name that no
followed table has."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from meepo_core.testing import run_meepo, write_config


def _users(harness: Any) -> None:
    harness.execute(
        "CREATE TABLE users (id INT PRIMARY KEY, tenant VARCHAR(10), email VARCHAR(64))",
        "INSERT INTO users VALUES (1, 'acme', 'ann@acme.example'), (2, 'test', 'qa@t.example')",
    )


def test_snapshot_and_stream_events_go_through_the_transforms(
    harness: Any, tmp_path: Path
) -> None:
    _users(harness)
    db = harness.db.name
    write_config(tmp_path, {"p": {  # rows 1 and 2 come from the snapshot, 3 and 4 streamed
        "source": {**harness.options(), "tables": [f"{db}.users"], "start": harness.end()},
        "snapshot": "initial",
        "transforms": [
            {"type": "filter", "where": "row.tenant != 'test'"},
            {"type": "hash", "columns": [f"{db}.users.email"], "salt": "pepper"},
        ],
        "sinks": [{"type": "jsonl", "path": "out.jsonl"}],
    }})
    first = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    harness.execute("INSERT INTO users VALUES (3, 'acme', 'bob@acme.example'), "
                    "(4, 'test', 'qa2@t.example')")
    second = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    events = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]

    def salted(email: str) -> str:
        return hashlib.sha256(f"pepper{email}".encode()).hexdigest()

    assert [(e["action"], e["pk"], e["after"]["email"]) for e in events] == [
        ("read", 1, salted("ann@acme.example")), ("write", 3, salted("bob@acme.example"))]


def test_check_warns_about_columns_no_followed_table_has(harness: Any, tmp_path: Path) -> None:
    _users(harness)
    db = harness.db.name
    write_config(tmp_path, {"p": {
        "source": {**harness.options(), "tables": [f"{db}.users"]},
        "transforms": [{"type": "hash", "columns": [f"{db}.users.email", f"{db}.users.emial"],
                        "salt": "s"},
                       {"type": "filter", "where": "row.tenant != 'x' && row.tennant != 'y'"}],
        "sinks": [{"type": "null", "transforms": [
            {"type": "drop_columns", "columns": [f"{db}.orders.phone"]}]}],
    }})
    result = run_meepo("check", "p", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "transforms: WARNING" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("meepo: warning")]
    assert warnings == [
        f"meepo: warning: tool.meepo.pipelines.p.transforms[0].columns[1]: "
        f"'{db}.users.emial' names no column of the pipeline's tables (tables {db}.users "
        "have no column 'emial'); fix the name, or the transform changes nothing there",
        "meepo: warning: tool.meepo.pipelines.p.transforms[1].where: '*.tennant' names no "
        f"column of the pipeline's tables (tables {db}.users have no column 'tennant'); fix "
        "the name, or the transform changes nothing there",
        f"meepo: warning: tool.meepo.pipelines.p.sinks[0].transforms[0].columns[0]: "
        f"'{db}.orders.phone' names no column of the pipeline's tables (no followed table "
        f"matches '{db}.orders'); fix the name, or the transform changes nothing there",
    ]


def test_columns_the_transforms_drop_first_are_never_decoded(
    harness: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline whose transforms drop columns before any step reads them tells the source
    (``drop_columns_early``): the decoders skip them in the snapshot and the stream, and the
    events' definitions lose them, the key column excepted. The events equal those of the
    same chain when a filter reading the whole row keeps the source from being told."""
    from meepo_core import RowEvent, Runner, load_pipeline
    from meepo_core.builtin.memory import channel

    harness.execute(
        "CREATE TABLE contacts (id INT PRIMARY KEY, tenant VARCHAR(10), email VARCHAR(64), "
        "phone VARCHAR(20), price DECIMAL(10,2))",
        "INSERT INTO contacts VALUES (1, 'acme', 'ann@a.example', '+31 1', 1.25), "
        "(2, 'test', 'qa@t.example', '+31 2', 2.50)")
    db = harness.db.name
    start = harness.end()
    keep_test_out = "row.tenant != 'test'"

    def pipeline(first_filter: str, sink: str) -> dict[str, Any]:
        return {
            "source": {**harness.options(), "tables": [f"{db}.*"], "start": start,
                       "no_pk": "row"},
            "snapshot": "initial",
            "transforms": [
                {"type": "filter", "where": first_filter},
                {"type": "hash", "columns": [f"{db}.contacts.email"], "salt": "pepper"},
                {"type": "drop_columns", "columns": [f"{db}.*.phone", f"{db}.contacts.id",
                                                     f"{db}.*.pr*"]},
                {"type": "route", "to": "{table}_v2"},
            ],
            "sinks": [{"type": "memory", "name": sink}],
        }

    write_config(tmp_path, {
        "early": pipeline(keep_test_out, f"early-{db}"),
        # reading the whole row, this filter could depend on every column: nothing early
        "late": pipeline(f"{keep_test_out} && size(row) > 0", f"late-{db}")})
    monkeypatch.chdir(tmp_path)

    def run_both() -> None:
        for name in ("early", "late"):
            Runner(load_pipeline(name, tmp_path / "pyproject.toml")).run(once=True)

    run_both()  # the snapshot: rows 1 and 2
    harness.execute(
        "INSERT INTO contacts VALUES (3, 'acme', 'bob@a.example', '+31 3', 3.75)",
        "UPDATE contacts SET phone = '+31 9', price = 9.99, email = 'ann@b.example' "
        "WHERE id = 1",
        "DELETE FROM contacts WHERE id = 3",
        # a table without a key (created after the snapshot, which needs keys)
        "CREATE TABLE notes (tenant VARCHAR(10), body TEXT, phone VARCHAR(20))",
        "INSERT INTO notes VALUES ('acme', 'hello', '+31 4')")
    run_both()
    # memory channels live as long as the process: named after this test's database
    early, late = channel(f"early-{db}").events, channel(f"late-{db}").events

    def seen(e: RowEvent) -> tuple[Any, ...]:  # snapshot reads differ in time and place
        stream = e.action != "read"
        return (e.table, e.action, e.pk, e.before, e.after, e.destination,
                stream and e.position, stream and e.sequence, stream and e.txid)
    assert [seen(e) for e in early] == [seen(e) for e in late]
    contacts = [e for e in early if e.table == "contacts"]
    assert [(e.action, e.pk, e.destination) for e in contacts] == [
        ("read", 1, "contacts_v2"), ("write", 3, "contacts_v2"), ("update", 1, "contacts_v2"),
        ("delete", 3, "contacts_v2")]
    assert all(set(image) == {"tenant", "email"}
               for e in contacts for image in (e.before, e.after) if image is not None)
    assert contacts[2].after == {"tenant": "acme",
                                 "email": hashlib.sha256(b"pepperann@b.example").hexdigest()}
    # keyed by its whole row, phone included, the keyless table keeps its columns
    (note,) = [e for e in early if e.table == "notes"]
    assert note.after == {"tenant": "acme", "body": "hello"}
    assert note.pk == ("acme", "hello", "+31 4")

    def columns(events: list[RowEvent], table: str) -> set[tuple[str, ...]]:
        return {tuple(c.name for c in e.definition.columns) for e in events
                if e.definition and e.table == table}
    # told the source: the definitions lost the dropped columns but the key
    assert columns(early, "contacts") == {("id", "tenant", "email")}
    assert columns(late, "contacts") == {("id", "tenant", "email", "phone", "price")}
    assert columns(early, "notes") == columns(late, "notes") == {("tenant", "body", "phone")}
