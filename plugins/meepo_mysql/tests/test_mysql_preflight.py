"""Preflight (``meepo check`` and the start of ``stream``) and connection errors, against
the real MariaDB: every problem is one line naming the setting and its fix."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from meepo_testkit.servers import free_port

from meepo_core import SourceError
from meepo_core.testing import make_context, meepo_command, run_meepo, write_config


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


def test_a_start_the_server_does_not_have_is_a_check_problem_and_saves_nothing(
    mysql_db: Any, tmp_path: Path
) -> None:
    mysql_db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    pipeline = {"source": {"type": "mysql", "dsn": mysql_db.server.dsn,
                           "tables": [f"{mysql_db.name}.t"], "start": "binlog.999999:4"},
                "sinks": [{"type": "print"}]}
    write_config(tmp_path, {"p": pipeline})
    check = run_meepo("check", "p", cwd=tmp_path)
    assert check.returncode == 1 and "source: FAILED" in check.stdout
    assert ("tool.meepo.pipelines.p.source.start = \"binlog.999999:4\": binlog binlog.999999 "
            "is not on the server") in check.stderr
    failed = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert failed.returncode == 1 and "binlog.999999 is not on the server" in failed.stderr
    assert not (tmp_path / ".meepo" / "p.json").exists()  # nothing delivered, nothing saved
    # the corrected start is used: the run starts where the config now says
    file, pos = mysql_db.server.execute("SHOW MASTER STATUS", database=None)[0][:2]
    mysql_db.execute("INSERT INTO t VALUES (1)")
    write_config(tmp_path, {"p": {**pipeline, "source": {**pipeline["source"],
                                                         "start": f"{file}:{pos}"}}})
    fixed = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.splitlines() == ["t_write 1"]


def test_pipelines_of_the_same_name_in_two_projects_get_their_own_server_id(
    mysql_db: Any, tmp_path: Path
) -> None:
    mysql_db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    runs, ids = [], []
    for project in ("one", "two"):
        (tmp_path / project).mkdir()
        write_config(tmp_path / project, {"orders": {
            "source": {"type": "mysql", "dsn": mysql_db.server.dsn,
                       "tables": [f"{mysql_db.name}.t"], "heartbeat": 1},
            "sinks": [{"type": "print"}]}})
        runs.append(subprocess.Popen(meepo_command("run", "orders"), cwd=tmp_path / project,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        ids.append(_wait_for_line(runs[-1], "mysql source:").rsplit("server_id ", 1)[1])
    assert ids[0] != ids[1]
    mysql_db.execute("INSERT INTO t VALUES (1)")
    time.sleep(3)
    for run in runs:
        assert run.poll() is None, run.communicate()[1][-2000:]  # neither was dropped
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
        assert run.returncode == 0, err[-2000:]
        assert out == "t_write 1\n"


def test_two_pipelines_with_one_server_id_stop_naming_the_key(
    mysql_db: Any, tmp_path: Path
) -> None:
    mysql_db.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    runs = []
    for project in ("one", "two"):
        (tmp_path / project).mkdir()
        write_config(tmp_path / project, {"orders": {
            "source": {"type": "mysql", "dsn": mysql_db.server.dsn, "server_id": 4242,
                       "tables": [f"{mysql_db.name}.t"], "heartbeat": 1},
            "sinks": [{"type": "print"}]}})
        runs.append(subprocess.Popen(meepo_command("run", "orders"), cwd=tmp_path / project,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        _wait_for_line(runs[-1], "mysql source:")
    first, second = runs
    assert first.wait(30) == 1
    err = first.communicate()[1]
    assert ("with this pipeline's server_id 4242" in err
            and "set tool.meepo.pipelines.orders.source.server_id" in err), err[-2000:]
    assert "Traceback" not in err
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0


def _wait_for_line(run: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    """Read ``run``'s stderr until a line contains ``text`` and return that line (the rest
    stays readable)."""
    assert run.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = run.stderr.readline()
        seen.append(line)
        if text in line:
            return line.strip()
        if not line and run.poll() is not None:
            break
    raise AssertionError(f"no line with {text!r}: {''.join(seen)[-2000:]}")
