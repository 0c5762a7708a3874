"""Preflight (``meepo check`` and the start of ``stream``) and connection errors, against
the real MariaDB: every problem is one line naming the setting and its fix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from meepo_testkit.servers import free_port

from meepo_core import SourceError
from meepo_core.testing import make_context, run_meepo, write_config


def test_check_passes_on_a_ready_server(harness: Any) -> None:
    assert harness.source().check() == []


@pytest.fixture
def global_setting(mariadb: Any) -> Iterator[Any]:
    """Set a global binlog variable for one test, restoring it afterwards."""
    saved: dict[str, str] = {}

    def set_global(name: str, value: str) -> None:
        if name not in saved:
            saved[name] = str(mariadb.execute(f"SELECT @@GLOBAL.{name}", database=None)[0][0])
        mariadb.execute(f"SET GLOBAL {name} = %s", int(value) if value.isdigit() else value,
                        database=None)

    yield set_global
    for name, value in saved.items():
        literal = value if value.isdigit() else f"'{value}'"
        mariadb.execute(f"SET GLOBAL {name} = {literal}", database=None)


@pytest.mark.parametrize(
    ("name", "value", "wanted"),
    [("binlog_format", "MIXED", "ROW"), ("binlog_row_image", "MINIMAL", "FULL"),
     ("binlog_row_metadata", "MINIMAL", "FULL")],
)
def test_wrong_binlog_setting_names_the_setting_and_fix(
    harness: Any, global_setting: Any, name: str, value: str, wanted: str
) -> None:
    global_setting(name, value)
    problems = harness.source().check()
    assert problems == [
        f"{name} is {value}, meepo needs {wanted}: run SET GLOBAL {name} = '{wanted}' and add "
        f"{name} = {wanted} under [mysqld] in my.cnf"
    ]
    with pytest.raises(SourceError) as caught:
        list(harness.source().stream(None, make_context(harness.tmp_path), once=True))
    assert f"SET GLOBAL {name} = '{wanted}'" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.fixture
def limited_user(mariadb: Any) -> Iterator[tuple[str, str]]:
    name, password = f"lim_{uuid.uuid4().hex[:8]}", "pw"
    mariadb.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'", database=None)
    yield name, password
    mariadb.execute(f"DROP USER '{name}'@'%'", database=None)


def test_missing_replication_privileges_give_the_grant(
    harness: Any, mariadb: Any, limited_user: tuple[str, str]
) -> None:
    name, password = limited_user
    mariadb.execute(f"GRANT SELECT ON `{harness.db.name}`.* TO '{name}'@'%'", database=None)
    dsn = f"mysql://{name}:{password}@{mariadb.host}:{mariadb.port}"
    assert harness.source(dsn=dsn).check() == [
        f"user '{name}'@'%' lacks the REPLICATION SLAVE and BINLOG MONITOR privileges needed "
        f"to read the binlog: run GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO "
        f"'{name}'@'%'"
    ]
    mariadb.execute(f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{name}'@'%'",
                    database=None)
    assert harness.source(dsn=dsn).check() == []
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.end()
    harness.execute("INSERT INTO t VALUES (1)")
    events, _ = harness.drain(None, dsn=dsn, start=start)
    assert [e.pk for e in events] == [1]


def test_wrong_password_is_one_line_naming_the_dsn(harness: Any, mariadb: Any) -> None:
    dsn = f"mysql://meepo:wrong@{mariadb.host}:{mariadb.port}"
    with pytest.raises(SourceError) as caught:
        harness.source(dsn=dsn).check()
    message = str(caught.value)
    assert message.startswith(f"cannot log in to MySQL at {mariadb.host}:{mariadb.port} as 'meepo'")
    assert message.endswith("check the user and password in source.dsn")
    assert "\n" not in message


def test_unreachable_server_is_one_line_naming_the_dsn(harness: Any) -> None:
    dsn = f"mysql://meepo:meepo@127.0.0.1:{free_port()}"
    with pytest.raises(SourceError) as caught:
        list(harness.source(dsn=dsn).stream(None, make_context(harness.tmp_path), once=True))
    message = str(caught.value)
    assert message.startswith("cannot reach MySQL at 127.0.0.1:")
    assert "check the host and port in source.dsn" in message and "\n" not in message


def test_mysql_gtid_start_on_mariadb_is_reported(harness: Any) -> None:
    problems = harness.source(start="3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5").check()
    assert len(problems) == 1
    assert problems[0].startswith("source.start is a mysql GTID set but the server is mariadb")


def test_meepo_check_cli_reports_each_problem(
    harness: Any, global_setting: Any, tmp_path: Path
) -> None:
    source = {"type": "mysql", "dsn": harness.server.dsn, "tables": [f"{harness.db.name}.*"]}
    write_config(tmp_path, {"orders": {"source": source, "sinks": [{"type": "null"}]}})
    ok = run_meepo("check", "orders", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "source: ok" in ok.stdout
    global_setting("binlog_row_image", "MINIMAL")
    global_setting("binlog_format", "STATEMENT")
    failed = run_meepo("check", "orders", cwd=tmp_path)
    assert failed.returncode == 1
    lines = [line for line in failed.stderr.splitlines() if line.startswith("meepo: source:")]
    assert lines == [
        "meepo: source: binlog_format is STATEMENT, meepo needs ROW: run SET GLOBAL "
        "binlog_format = 'ROW' and add binlog_format = ROW under [mysqld] in my.cnf",
        "meepo: source: binlog_row_image is MINIMAL, meepo needs FULL: run SET GLOBAL "
        "binlog_row_image = 'FULL' and add binlog_row_image = FULL under [mysqld] in my.cnf",
    ]


def test_bad_dsn_is_a_config_error_through_the_cli(tmp_path: Path) -> None:
    source = {"type": "mysql", "dsn": "postgres://x@y"}
    write_config(tmp_path, {"orders": {"source": source, "sinks": [{"type": "null"}]}})
    result = run_meepo("run", "orders", "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "meepo: error: tool.meepo.pipelines.orders.source.dsn: scheme must be mysql://"
    )


def test_compressed_binlog_events_are_decoded(harness: Any, global_setting: Any) -> None:
    """MariaDB's log_bin_compress writes rows and statements of 256+ bytes compressed."""
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
    start = harness.end()
    global_setting("log_bin_compress", "ON")
    global_setting("log_bin_compress_min_len", "10")
    assert harness.source().check() == []
    harness.execute(
        "INSERT INTO t VALUES (1, REPEAT('x', 2000)), (2, 'short')",
        "UPDATE t SET v = CONCAT(v, 'y') WHERE id = 1",
        "ALTER TABLE t ADD COLUMN w INT DEFAULT 7 COMMENT '" + "a long comment " * 30 + "'",
        "DELETE FROM t WHERE id = 2",
    )
    compressed = [row for row in harness.server.execute(
        f"SHOW BINLOG EVENTS IN '{start.split(':')[0]}' FROM {start.split(':')[1]}",
        database=None) if "compressed" in str(row[2]).lower()]
    global_setting("log_bin_compress", "OFF")
    assert {str(row[2]) for row in compressed} == {
        "Write_rows_compressed_v1", "Update_rows_compressed_v1", "Delete_rows_compressed_v1",
        "Query_compressed"}
    events, _ = harness.drain(None, start=start)
    assert [(e.action, e.pk) for e in events] == [
        ("write", 1), ("write", 2), ("update", 1), ("delete", 2)]
    assert events[0].after == {"id": 1, "v": "x" * 2000}
    assert events[2].after == {"id": 1, "v": "x" * 2000 + "y"}
    assert events[3].before == {"id": 2, "v": "short", "w": 7}
