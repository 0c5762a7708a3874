"""Option validation, positions, filters and value conversions (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from meepo_mysql import MySQLSource
from meepo_mysql.config import SYSTEM_SCHEMAS, parse_settings
from meepo_mysql.positions import (
    BinlogPosition,
    MariaDBGtidState,
    MySQLGtidState,
    file_index,
    gtid_flavor,
    sequence_base,
)
from meepo_mysql.values import mysql_json

from meepo_core import ColumnRule, ConfigError, Options, TableFilter
from meepo_core.plugins import load_registry

DSN = "mysql://repl:s%40cret@db.example:3307"


def settings(**options: Any) -> Any:
    return parse_settings(Options({"type": "mysql", "dsn": DSN, **options}, "src", Path(".")))


def error(**options: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        settings(**options)
    return str(caught.value)


def test_registered_as_mysql() -> None:
    assert load_registry().lookup("source", "mysql", "source.type") is MySQLSource


def test_dsn_and_defaults() -> None:
    s = settings()
    assert (s.host, s.port, s.user, s.password) == ("db.example", 3307, "repl", "s@cret")
    assert s.start.kind == "latest" and s.no_pk == "skip" and s.heartbeat == 10.0
    assert s.filter.tables == ("*.*",)
    assert s.dsn_key == "src.dsn"


def test_dsn_database_narrows_the_default_tables() -> None:
    s = parse_settings(Options({"type": "mysql", "dsn": "mysql://u@h/shop"}, "src", Path(".")))
    assert s.filter.tables == ("shop.*",)


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgres://u@h", "src.dsn: scheme must be mysql:// or mariadb://"),
        ("mysql://h:3306", "src.dsn: has no user"),
        ("mysql://u@:3306", "src.dsn: has no host"),
        ("mysql://u@h:99999", "src.dsn: not a valid DSN"),
        ("mysql://u@h?sslmode=1", "src.dsn: unknown parameter ?sslmode="),
    ],
)
def test_bad_dsn_names_the_key(dsn: str, message: str) -> None:
    assert error(dsn=dsn).startswith(message)


def test_dsn_tls_parameters() -> None:
    s = settings(dsn=DSN + "?ssl_ca=/ca.pem&ssl_verify_cert=true&connect_timeout=3")
    assert s.connect_args == {"connect_timeout": 3, "ssl": {"ca": "/ca.pem"},
                              "ssl_verify_cert": True}


@pytest.mark.parametrize(
    ("start", "kind"),
    [("latest", "latest"), ("earliest", "earliest"), ("binlog.000003:1234", "position"),
     ("0-1-100", "gtid"), ("0-1-100,1-2-3", "gtid"),
     ("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-100", "gtid"),
     ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,3e11fa47-71ca-11e1-9e33-c80aa9429563:23",
      "gtid")],
)
def test_start_forms(start: str, kind: str) -> None:
    parsed = settings(start=start).start
    assert parsed.kind == kind
    if start == "binlog.000003:1234":
        assert (parsed.file, parsed.pos) == ("binlog.000003", 1234)
    if kind == "gtid":
        assert parsed.flavor == ("mariadb" if start[0] in "01" and "-" in start[:3] else "mysql")


def test_bad_start_lists_the_forms() -> None:
    assert error(start="yesterday").startswith("src.start: 'yesterday' is not \"latest\"")
    assert error(start="binlog.000001:2") == "src.start: binlog positions start at 4, not 2"


def test_other_options_are_validated() -> None:
    assert error(tables=["orders"]).startswith("src.tables[0]: 'orders' must be schema.table")
    assert error(exclude_tables=["x"]).startswith("src.exclude_tables[0]:")
    assert error(no_pk="drop").startswith("src.no_pk: must be one of 'skip', 'row'")
    assert error(server_id=0) == "src.server_id: must be at least 1, not 0"
    assert error(server_id=2**32) == "src.server_id: must be at most 4294967295, not 4294967296"
    assert error(heartbeat=0).startswith("src.heartbeat: must be at least 0.1")
    assert error(columns={"s.t": ["a"]}).startswith("src.columns.s.t: must be a table with")
    assert error(columns={"s.t": {"include": [1]}}).startswith("src.columns.s.t.include:")
    assert error(tabels=["s.t"]).startswith("src.tabels: unknown option")


def test_server_id_is_stable_per_pipeline_unless_set() -> None:
    s = settings()
    assert s.resolved_server_id("orders") == s.resolved_server_id("orders")
    assert s.resolved_server_id("orders") != s.resolved_server_id("users")
    assert 2**30 <= s.resolved_server_id("orders") < 2**31
    assert settings(server_id=42).resolved_server_id("orders") == 42


def test_table_filter_globs_and_system_schemas() -> None:
    f = TableFilter(("shop.order*", "*.audit", "mysql.*"), ("shop.order_tmp",),
                    system_schemas=SYSTEM_SCHEMAS)
    assert f.follows("shop", "orders") and f.follows("shop", "order_items")
    assert not f.follows("shop", "order_tmp") and not f.follows("shop", "users")
    assert f.follows("crm", "audit") and f.follows("mysql", "user")
    everything = TableFilter(system_schemas=SYSTEM_SCHEMAS)
    assert everything.follows("shop", "x") and not everything.follows("mysql", "user")
    assert not everything.follows("information_schema", "tables")


def test_rules_hiding_names_each_rule_that_hides_a_column() -> None:
    f = TableFilter(column_rules=(
        ColumnRule("shop.users", exclude=("id",)),
        ColumnRule("shop.*", include=("name",)),
        ColumnRule("crm.*", exclude=("id",)),
    ))
    assert f.rules_hiding("shop", "users", "id") == ["shop.users", "shop.*"]
    assert f.rules_hiding("shop", "orders", "name") == []


def test_column_rules_all_apply() -> None:
    f = TableFilter(column_rules=(
        ColumnRule("shop.users", exclude=("password*",)),
        ColumnRule("shop.*", include=("id", "name", "password_hash", "email")),
    ))
    columns = ["id", "name", "password_hash", "email", "token"]
    assert f.hidden_columns("shop", "users", columns) == {"password_hash", "token"}
    assert f.hidden_columns("crm", "users", columns) == frozenset()


def test_positions_round_trip_and_validate() -> None:
    p = BinlogPosition("binlog.000003", 1234, "0-1-100")
    assert BinlogPosition.from_json(p.to_json()) == p
    assert BinlogPosition("f.000001", 4).to_json() == {"file": "f.000001", "pos": 4}
    for bad in ({"file": "f"}, {"file": "f", "pos": "4"}, [1], {"file": "f", "pos": 4,
                                                                 "gtid": "nope"}):
        with pytest.raises(ValueError):
            BinlogPosition.from_json(bad)


def test_sequence_grows_with_file_and_offset() -> None:
    assert file_index("binlog.000003") == 3
    assert file_index("mysql-bin.1000000") == 1000000
    a = sequence_base(3, 4_294_000_000) + 5
    b = sequence_base(4, 4)
    assert a < b < 2**63


def test_gtid_states() -> None:
    assert gtid_flavor("0-1-5") == "mariadb"
    assert gtid_flavor("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5") == "mysql"
    assert gtid_flavor("binlog.000001:4") is None
    state = MariaDBGtidState("0-1-5,2-1-9")
    state.update("0-1-6")
    state.update("1-3-1")
    assert str(state) == "0-1-6,1-3-1,2-1-9"
    mysql = MySQLGtidState("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5")
    mysql.update("3e11fa47-71ca-11e1-9e33-c80aa9429562:6")
    mysql.update("3e11fa47-71ca-11e1-9e33-c80aa9429562:3")  # already in the set
    assert str(mysql) == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-6"


def test_mysql_binary_json_is_normalised() -> None:
    raw = {b"a": [1, b"x", {b"b": None}], b"c": b"\xf0\x9f\x98\x80", b"d": b"\xff"}
    assert mysql_json(raw) == {"a": [1, "x", {"b": None}], "c": "😀", "d": b"\xff"}
