"""Transforms on a real MariaDB pipeline: snapshot rows and streamed rows go through the
same transforms, and `meepo check` warns about columns the transforms name that no
followed table has."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

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
