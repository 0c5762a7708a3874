"""Transforms on a real PostgreSQL pipeline: columns the pipeline's transforms drop before
any step reads them are left out by the source (never converted), with the same events."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from meepo_core import RowEvent, Runner, load_pipeline
from meepo_core.builtin.memory import channel
from meepo_core.testing import write_config


def test_columns_the_transforms_drop_first_are_never_decoded(
    harness: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the mysql test of the same name: the source is told (``drop_columns_early``) and
    its events lose the dropped columns (definitions too) except the key, and a table
    without a key keeps them all (its events are keyed by the whole row). The events equal
    those of the same chain when a filter reading the whole row keeps the source from
    being told."""
    harness.execute(
        "CREATE TABLE contacts (id INT PRIMARY KEY, tenant TEXT, email TEXT, phone TEXT, "
        "price NUMERIC(10,2))",
        "CREATE TABLE notes (tenant TEXT, body TEXT, phone TEXT)",
        # old rows whole: the filter reads a deleted row's tenant, and keyless updates
        "ALTER TABLE contacts REPLICA IDENTITY FULL", "ALTER TABLE notes REPLICA IDENTITY FULL")
    schema = harness.schema
    late_slot, late_publication = f"{harness.slot}_late", f"{harness.publication}_late"

    def pipeline(first_filter: str, sink: str, **source: Any) -> dict[str, Any]:
        return {
            "source": harness.options(**source),
            "transforms": [
                {"type": "filter", "where": first_filter},
                {"type": "hash", "columns": [f"{schema}.contacts.email"], "salt": "pepper"},
                {"type": "drop_columns", "columns": [f"{schema}.*.phone",
                                                     f"{schema}.contacts.id",
                                                     f"{schema}.*.pr*"]},
                {"type": "route", "to": "{table}_v2"},
            ],
            "sinks": [{"type": "memory", "name": sink}],
        }

    keep_test_out = "row.tenant != 'test'"
    write_config(tmp_path, {
        "early": pipeline(keep_test_out, f"early-{schema}"),
        # reading the whole row, this filter could depend on every column: nothing early
        "late": pipeline(f"{keep_test_out} && size(row) > 0", f"late-{schema}", slot=late_slot,
                         publication=late_publication)})
    monkeypatch.chdir(tmp_path)

    def run_both() -> None:
        for name in ("early", "late"):
            Runner(load_pipeline(name, tmp_path / "pyproject.toml")).run(once=True)

    try:
        run_both()  # slots and publications
        harness.execute(
            "INSERT INTO contacts VALUES (1, 'acme', 'ann@a.example', '+31 1', 1.25), "
            "(2, 'test', 'qa@t.example', '+31 2', 2.50)",
            "UPDATE contacts SET phone = '+31 9', price = 9.99, email = 'ann@b.example' "
            "WHERE id = 1",
            "DELETE FROM contacts WHERE id = 1",
            "INSERT INTO notes VALUES ('acme', 'hello', '+31 4')",
            "UPDATE notes SET body = 'bye'")
        run_both()
    finally:  # the late pipeline's own slot and publication (the runs have ended)
        with harness.server.connect(autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM "
                         "pg_replication_slots WHERE slot_name = %s", (late_slot,))
            conn.execute(f'DROP PUBLICATION IF EXISTS "{late_publication}"')
    # memory channels live as long as the process: named after this test's schema
    early, late = channel(f"early-{schema}").events, channel(f"late-{schema}").events

    def seen(e: RowEvent) -> tuple[Any, ...]:
        return (e.table, e.action, e.pk, e.before, e.after, e.destination, e.txid)
    assert [seen(e) for e in early] == [seen(e) for e in late]
    contacts = [e for e in early if e.table == "contacts"]
    assert [(e.action, e.pk) for e in contacts] == [("write", 1), ("update", 1), ("delete", 1)]
    assert contacts[1].after == {"tenant": "acme",
                                 "email": hashlib.sha256(b"pepperann@b.example").hexdigest()}
    assert all(set(image) == {"tenant", "email"}
               for e in contacts for image in (e.before, e.after) if image is not None)
    notes = [e for e in early if e.table == "notes"]
    assert [(e.action, e.pk, e.after) for e in notes] == [
        ("write", ("acme", "hello", "+31 4"), {"tenant": "acme", "body": "hello"}),
        ("update", ("acme", "bye", "+31 4"), {"tenant": "acme", "body": "bye"})]

    def columns(events: list[RowEvent], table: str) -> set[tuple[str, ...]]:
        return {tuple(c.name for c in e.definition.columns) for e in events
                if e.definition and e.table == table}
    # told the source: the definitions lost the dropped columns but the key
    assert columns(early, "contacts") == {("id", "tenant", "email")}
    assert columns(late, "contacts") == {("id", "tenant", "email", "phone", "price")}
    assert columns(early, "notes") == columns(late, "notes") == {("tenant", "body", "phone")}
