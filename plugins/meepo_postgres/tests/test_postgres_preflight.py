"""``meepo check`` and the start-up checks: one line per problem, each with its fix; a
dropped or invalidated slot stops the pipeline with the recovery steps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from meepo_testkit.servers import PostgresServer

from meepo_core import SourceError
from meepo_core.testing import run_meepo, write_config


def test_check_passes_on_a_ready_server(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    assert harness.source(tables=[f"{harness.schema}.t"]).check() == []


@pytest.fixture
def limited_role(harness: Any) -> Iterator[str]:
    role = f"r_{harness.slot[-12:]}"
    harness.execute(f"CREATE ROLE {role} LOGIN",
                    f"GRANT USAGE ON SCHEMA {harness.schema} TO {role}")
    try:
        yield role
    finally:
        harness.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_check_names_each_problem_with_its_fix(harness: Any, limited_role: str) -> None:
    s = harness.schema
    harness.execute("CREATE TABLE keyed (id INT PRIMARY KEY)", "CREATE TABLE nokey (a INT)",
                    f"GRANT SELECT ON keyed TO {limited_role}")
    dsn = harness.server.url.replace("postgres@", f"{limited_role}@")
    problems = harness.source(dsn=dsn, tables=[f"{s}.*", f"{s}.missing"]).check()
    assert problems == [
        f"user {limited_role!r} lacks the REPLICATION attribute needed to stream changes: run "
        f'ALTER ROLE "{limited_role}" WITH REPLICATION',
        f"source.tables[1]: table {s}.missing does not exist in database 'meepo_test' (or this "
        "user cannot see it); fix the name or create the table",
        f"publication {harness.publication!r} does not exist and user {limited_role!r} cannot "
        "create it (that needs CREATE on the database and ownership of the tables): run "
        f'CREATE PUBLICATION "{harness.publication}" FOR TABLE "{s}"."keyed" as the tables\' '
        "owner, or set source.publication to an existing one",
        f"table {s}.nokey has no primary key and replica identity DEFAULT, so its UPDATEs and "
        f'DELETEs cannot be published: run ALTER TABLE "{s}"."nokey" REPLICA IDENTITY FULL (or '
        "add a primary key)",
        f"user {limited_role!r} lacks SELECT on table {s}.nokey: run GRANT SELECT ON "
        f'"{s}"."nokey" TO "{limited_role}"',
    ]


def test_stream_refuses_to_start_on_a_blocking_problem(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    source = harness.source(tables=[f"{harness.schema}.tt"])
    with pytest.raises(SourceError, match=r"not ready for meepo: .*tables\[0\]: table .*\.tt "
                                          r"does not exist"):
        list(source.stream(None, harness.context(), once=True))
    source.close()


def test_existing_publication_missing_a_table_is_reported(harness: Any) -> None:
    harness.execute("CREATE TABLE a (id INT PRIMARY KEY)", "CREATE TABLE b (id INT PRIMARY KEY)",
                    f'CREATE PUBLICATION "{harness.publication}" FOR TABLE a')
    assert harness.source().check() == [
        f"table {harness.schema}.b matches source.tables but is not in publication "
        f"{harness.publication!r}: run ALTER PUBLICATION \"{harness.publication}\" ADD TABLE "
        f'"{harness.schema}"."b"'
    ]


def test_slot_with_another_plugin_is_reported(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)",
                    f"SELECT pg_create_logical_replication_slot('{harness.slot}', 'test_decoding')")
    assert harness.source().check() == [
        f"replication slot {harness.slot!r} is a logical slot with plugin 'test_decoding', "
        f"meepo needs a logical slot with pgoutput: SELECT pg_drop_replication_slot("
        f"'{harness.slot}'), or set source.slot to another name"
    ]


def test_dropped_slot_stops_with_the_recovery_steps(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    position = harness.begin()
    harness.execute(f"SELECT pg_drop_replication_slot('{harness.slot}')",
                    "INSERT INTO t VALUES (1)")
    with pytest.raises(SourceError, match=r"replication slot '.*' no longer exists .* the "
                                          r"changes after the checkpoint .* are lost; to recover, "
                                          r"delete the pipeline's checkpoint"):
        harness.drain(position)
    assert harness.confirmed_lsn() is None  # not silently created again
    [line] = harness.source().check_resume(position)
    assert line.startswith(f"replication slot {harness.slot!r} no longer exists")


def test_invalidated_slot_stops_with_the_recovery_steps(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, pad TEXT)")
    position = harness.begin()
    with harness.server.connect(autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        conn.execute("SELECT pg_reload_conf()")
        try:
            for _ in range(4):
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS filler (v TEXT)")
                conn.execute("INSERT INTO filler SELECT repeat('x', 1000) "
                             "FROM generate_series(1, 2000)")
                conn.execute("SELECT pg_switch_wal()")
            conn.execute("CHECKPOINT")
            status = conn.execute("SELECT wal_status FROM pg_replication_slots "
                                  "WHERE slot_name = %s", (harness.slot,)).fetchone()
        finally:
            conn.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            conn.execute("SELECT pg_reload_conf()")
    assert status == ("lost",)
    lines = harness.source().check()
    assert lines == [
        f"replication slot {harness.slot!r} was invalidated: the server removed WAL it still "
        "needed (see max_slot_wal_keep_size), so changes after its position are lost; to "
        f"recover, run SELECT pg_drop_replication_slot('{harness.slot}'), delete the "
        "pipeline's checkpoint, rerun (a new slot starts at the current position) and "
        "backfill the sinks"
    ]
    assert harness.source().check_resume(position) == lines
    with pytest.raises(SourceError, match="was invalidated"):
        harness.drain(position)


class ReplicaOnlyServer(PostgresServer):
    """A server that cannot do logical replication: wal_level=replica, one slot, no senders."""

    def command(self) -> list[str]:
        argv = list(super().command())
        changes = {"wal_level=logical": "wal_level=replica",
                   "max_replication_slots=10": "max_replication_slots=1",
                   "max_wal_senders=10": "max_wal_senders=0"}
        return [changes.get(arg, arg) for arg in argv]


def test_check_reports_server_settings_through_the_cli(tmp_path: Path) -> None:
    with ReplicaOnlyServer(tmp_path / "replica") as server:
        with server.connect(autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            conn.execute("SELECT pg_create_physical_replication_slot('taken')")
        source = {"type": "postgres", "dsn": server.url, "tables": ["public.t"]}
        write_config(tmp_path, {"orders": {"source": source, "sinks": [{"type": "print"}]}})
        result = run_meepo("check", "orders", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "source: FAILED"
    assert result.stderr.splitlines()[:3] == [
        "meepo: source: wal_level is replica, logical replication needs logical: run ALTER "
        "SYSTEM SET wal_level = logical and restart the server",
        "meepo: source: no free replication slot (1 of max_replication_slots = 1 in use): drop "
        "an unused one with SELECT pg_drop_replication_slot('NAME'), or raise "
        "max_replication_slots in postgresql.conf and restart the server",
        "meepo: source: no free WAL sender (0 of max_wal_senders = 0 in use): raise "
        "max_wal_senders in postgresql.conf and restart the server",
    ]


def _publication_and_slot(harness: Any) -> tuple[list[Any], list[Any]]:
    publications = harness.query("SELECT pubname FROM pg_publication WHERE pubname = %s",
                                 harness.publication)
    slots = harness.query("SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s",
                          harness.slot)
    return publications, slots


@pytest.mark.parametrize("checkpoint", [
    {"file": "mysql-bin.000003", "pos": 4, "gtid": None},  # another source's position
    {"lsn": "0/16B3748", "sequence": 0},  # a postgres position, but its slot is gone
])
def test_refused_checkpoint_creates_no_publication_or_slot(
    harness: Any, checkpoint: dict[str, Any]
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    with pytest.raises(SourceError, match=r"not a postgres position|no longer exists"):
        harness.drain(checkpoint)
    assert _publication_and_slot(harness) == ([], [])


def test_refused_start_lsn_creates_no_publication_or_slot(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    with pytest.raises(SourceError, match=r"source.start 0/10 is before the new slot"):
        harness.drain(None, start="0/10")
    assert _publication_and_slot(harness) == ([], [])


def test_unknown_role_is_told_to_fix_the_user_in_the_dsn(harness: Any, tmp_path: Path) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    dsn = harness.server.url.replace("postgres@", "nobody_here@")
    source = {"type": "postgres", "dsn": dsn, "tables": [f"{harness.schema}.t"]}
    write_config(tmp_path, {"orders": {"source": source, "sinks": [{"type": "print"}]}})
    for command in ("check", "run"):
        result = run_meepo(command, "orders", "--once", cwd=tmp_path) if command == "run" \
            else run_meepo(command, "orders", cwd=tmp_path)
        assert result.returncode == 1
        lines = [line for line in result.stderr.splitlines() if "nobody_here" in line]
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert lines[0].endswith(
            "as 'nobody_here': role \"nobody_here\" does not exist; fix the user in "
            "tool.meepo.pipelines.orders.source.dsn, or create the role (CREATE ROLE "
            "nobody_here LOGIN REPLICATION PASSWORD '...')"
        ), lines[0]
        assert "host and port" not in result.stderr


def test_meepo_run_refuses_another_sources_checkpoint_and_creates_nothing(
    harness: Any, tmp_path: Path
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    write_config(tmp_path, {"orders": {"source": harness.options(),
                                       "checkpoint": "file:.meepo/orders.json",
                                       "sinks": [{"type": "print"}]}})
    (tmp_path / ".meepo").mkdir()
    (tmp_path / ".meepo" / "orders.json").write_text(json.dumps(
        {"pipeline": "orders", "position": {"file": "mysql-bin.000003", "pos": 4}}))
    result = run_meepo("run", "orders", "--once", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("meepo:")]
    assert "the checkpoint is not a postgres position" in line and "Traceback" not in result.stderr
    assert _publication_and_slot(harness) == ([], [])


def test_check_warns_about_columns_the_transforms_name_that_no_table_has(
    harness: Any, tmp_path: Path
) -> None:
    harness.execute(f"CREATE TABLE {harness.schema}.users (id INT PRIMARY KEY, email TEXT, "
                    "secret TEXT)")
    source = harness.options(columns={f"{harness.schema}.users": {"exclude": ["secret"]}})
    write_config(tmp_path, {"p": {"source": source, "sinks": [{"type": "null"}], "transforms": [
        {"type": "mask", "columns": [f"{harness.schema}.users.email",
                                     f"{harness.schema}.users.secret"]}]}})
    result = run_meepo("check", "p", cwd=tmp_path)
    assert "transforms: WARNING" in result.stdout, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("meepo: warning")]
    # the source's own column rule hides secret: masking it is a no-op worth knowing
    assert warnings == [
        f"meepo: warning: tool.meepo.pipelines.p.transforms[0].columns[1]: "
        f"'{harness.schema}.users.secret' names no column of the pipeline's tables (tables "
        f"{harness.schema}.users have no column 'secret'); fix the name, or the transform "
        "changes nothing there"]
