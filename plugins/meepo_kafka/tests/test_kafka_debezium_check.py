"""``meepo check`` names the columns the Debezium format cannot write (a problem: their
rows would be dead-lettered) and those it cannot always write as Debezium does (a
warning), from the postgres source's real table definitions."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from meepo_core.testing import run_meepo, write_config

pytestmark = pytest.mark.integration
pytest.importorskip("meepo_postgres", reason="needs meepo-postgres (the integration suite)")


def test_check_names_the_columns_debezium_format_cannot_write(
        postgres: Any, bootstrap: str, tmp_path: Path) -> None:
    schema = f"chk_{uuid.uuid4().hex[:6]}"
    with postgres.connect(autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.shapes (id int PRIMARY KEY, at point, "
                     "doc json, docb jsonb, n numeric(5, 2))")

    def check(source_extra: dict[str, Any], format: str = "debezium") -> Any:
        write_config(tmp_path, {"p": {
            "source": {"type": "postgres", "dsn": postgres.url, "tables": [f"{schema}.*"],
                       "slot": schema, "publication": schema, **source_extra},
            "sinks": [{"type": "kafka", "bootstrap_servers": bootstrap, "format": format,
                       **({"debezium": {"topic_prefix": "dbz"}} if format == "debezium"
                          else {})}]}})
        return run_meepo("check", "p", cwd=tmp_path)

    found = check({})
    assert found.returncode == 1, found.stderr
    assert (f"meepo: sinks[0] kafka: table {schema}.shapes: column 'at' has type 'point', which "
            "meepo's Debezium format does not encode, so every row of it would be "
            "dead-lettered; exclude the column (the source's columns setting) or use "
            'format = "meepo"') in found.stderr
    assert f"meepo: warning: sinks[0] kafka: table {schema}.shapes: column 'doc' (json)" \
        in found.stderr
    assert "'docb'" not in found.stderr and "'n'" not in found.stderr
    assert "sinks[0] kafka tables: FAILED" in found.stdout

    excluded = check({"columns": {f"{schema}.shapes": {"exclude": ["at"]}}})
    assert "'at'" not in excluded.stderr and "column 'doc' (json)" in excluded.stderr
    assert "sinks[0] kafka tables: WARNING" in excluded.stdout

    plain = check({}, format="meepo")
    assert "tables:" not in plain.stdout and "'at'" not in plain.stderr
