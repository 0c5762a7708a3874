"""Parts of the MySQL side of the Debezium format and of its recording, each on its own:
the protocol proxy the recording tool puts between Debezium's MySQL connector and MariaDB
(against a real MariaDB), Java 17's float text, and the JSON converter's surrogate
escapes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from meepo_kafka.java_json import escape_supplementary, jdk17_float


def _proxy_module() -> ModuleType:
    path = Path(__file__).parents[1] / "tools" / "mysql_version_proxy.py"
    spec = importlib.util.spec_from_file_location("mysql_version_proxy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
@pytest.mark.parametrize("claim", [None, b"8.0.36-log"])
def test_the_proxy_renames_mysql_8_4_statements_for_mariadb(mariadb: Any,
                                                            claim: bytes | None) -> None:
    pymysql = pytest.importorskip("pymysql")
    proxy_module = _proxy_module()
    mariadb.start()
    proxy = proxy_module.MySQLVersionProxy(mariadb.host, mariadb.port, claim)
    try:
        conn = pymysql.connect(host="127.0.0.1", port=proxy.port, user=mariadb.user,
                               password=mariadb.password)
        try:
            server_info = conn.get_server_info()  # the handshake's version
            with conn.cursor() as cur:
                cur.execute("SHOW BINARY LOG STATUS")  # MariaDB 10.11 does not know it
                status = cur.fetchone()
                # nor these names (the driver asks a claimed MySQL 8 for them)
                cur.execute("SELECT @@transaction_isolation AS transaction_isolation, "
                            "@@session.transaction_read_only, VERSION()")
                isolation, read_only, version = cur.fetchone()
        finally:
            conn.close()
    finally:
        proxy.close()
    assert server_info == ("8.0.36-log" if claim else f"5.5.5-{version}")
    assert status[0].startswith("binlog.")
    assert (isolation, read_only) == ("REPEATABLE-READ", 0)
    assert "MariaDB" in version  # results pass unchanged
    assert ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS") in proxy.rewritten


@pytest.mark.integration
def test_the_proxy_in_its_own_process_answers_status_queries_with_a_pinned_position(
        mariadb: Any) -> None:
    pymysql = pytest.importorskip("pymysql")
    mariadb.start()
    path = Path(__file__).parents[1] / "tools" / "mysql_version_proxy.py"
    proxy = subprocess.Popen(
        [sys.executable, str(path), f"{mariadb.host}:{mariadb.port}",
         "--position", "binlog.000001:1234"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None
        port = int(proxy.stdout.readline().strip().removeprefix("port="))
        conn = pymysql.connect(host="127.0.0.1", port=port, user=mariadb.user,
                               password=mariadb.password)
        try:
            with conn.cursor() as cur:
                for query in ("SHOW BINARY LOG STATUS", "show master status"):
                    cur.execute(query)
                    columns = [column[0] for column in cur.description]
                    assert cur.fetchall() == (("binlog.000001", 1234, "", ""),)
                    assert columns == ["File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB"]
                cur.execute("SELECT VERSION()")  # everything else as it is
                assert "MariaDB" in cur.fetchone()[0]
        finally:
            conn.close()
    finally:
        assert proxy.stdin is not None
        proxy.stdin.close()  # the proxy's signal to stop
        assert proxy.wait(10) == 0


def test_a_pinned_position_must_be_a_binlog_position() -> None:
    proxy_module = _proxy_module()
    assert proxy_module.pinned_status("binlog.000002", 4).startswith(b"SELECT 'binlog.000002'")
    for file, pos in (("x' OR '1", 4), ("binlog.000001", 3)):
        with pytest.raises(ValueError):
            proxy_module.pinned_status(file, pos)


def test_the_handshake_rewrite_keeps_everything_but_version_and_ssl() -> None:
    proxy_module = _proxy_module()
    rest = (b"\x05\x00\x00\x00" + b"abcdefgh" + b"\x00" + (0xF7FF).to_bytes(2, "little")
            + b"\x2d\x02\x00" + b"more")
    handshake = b"\x0a5.5.5-10.11.6-MariaDB-log\x00" + rest
    for claim, version in ((None, b"5.5.5-10.11.6-MariaDB-log"), (b"8.0.36-log", b"8.0.36-log")):
        rewritten = proxy_module.rewrite_handshake(handshake, claim)
        assert rewritten.startswith(b"\x0a" + version + b"\x00")
        after = rewritten[len(version) + 2:]
        assert int.from_bytes(after[13:15], "little") == 0xF7FF & ~0x0800
        assert after[:13] == rest[:13] and after[15:] == rest[15:]
    assert proxy_module.rewrite_handshake(b"\xff\x10\x04Too many") == b"\xff\x10\x04Too many"


@pytest.mark.parametrize(("value", "text"), [
    (123456789.0, b"1.23456792E8"),  # Debezium wrote this (golden): not the shortest
    (1.5, b"1.5"),
    (-3.4e38, b"-3.4E38"),
    (1e-5, b"1.0E-5"),
    (1e10, b"1.0E10"),
    (16777216.0, b"1.6777216E7"),
])
def test_floats_are_written_as_java_17_writes_them(value: float, text: bytes) -> None:
    assert orjson.dumps(jdk17_float(value)) == text


def test_characters_outside_the_bmp_become_escaped_surrogate_pairs() -> None:
    assert escape_supplementary(orjson.dumps("ü 🚀 é")) == '"ü \\uD83D\\uDE80 é"'.encode()
    assert escape_supplementary(b'{"a":"plain"}') == b'{"a":"plain"}'
