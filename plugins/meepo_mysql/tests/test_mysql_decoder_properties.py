"""Property test: random table definitions and rows, written, updated and deleted on the
real MariaDB, decode to what SELECT returns (the same replay as test_mysql_decoder)."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mysql_differential import Table, documented, replay_and_compare, run_steps
from pymysql.converters import escape_string

_tables = itertools.count()
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
LATIN1 = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, str):
        return f"'{escape_string(value)}'"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, timedelta):
        sign, value = ("-", -value) if value < timedelta(0) else ("", value)
        seconds = value.days * 86400 + value.seconds
        return f"'{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}." \
               f"{value.microseconds:06d}'"
    if isinstance(value, datetime | date):
        return f"'{value.isoformat(sep=' ') if isinstance(value, datetime) else value}'"
    return str(value)


@st.composite
def column(draw: st.DrawFn) -> tuple[str, str, st.SearchStrategy[Any], bool]:
    """(ddl type, documented mapping kind, value strategy, nullable)."""
    nullable = draw(st.booleans())
    fsp = draw(st.integers(0, 6))
    size = draw(st.integers(1, 40))
    choice = draw(st.sampled_from([
        "int", "decimal", "float", "double", "char", "varchar", "text", "latin1", "binary",
        "varbinary", "blob", "date", "datetime", "timestamp", "time", "year", "bit", "enum",
        "set", "json",
    ]))
    if choice == "int":
        bits, unsigned = draw(st.sampled_from([8, 16, 24, 32, 64])), draw(st.booleans())
        name = {8: "TINYINT", 16: "SMALLINT", 24: "MEDIUMINT", 32: "INT", 64: "BIGINT"}[bits]
        low, high = (0, 2**bits - 1) if unsigned else (-2**(bits - 1), 2**(bits - 1) - 1)
        return f"{name}{' UNSIGNED' if unsigned else ''}", "", st.integers(low, high), nullable
    if choice == "decimal":
        precision = draw(st.integers(1, 65))
        scale = draw(st.integers(0, min(30, precision)))
        bound = Decimal(10) ** (precision - scale) - Decimal(1).scaleb(-scale)
        return (f"DECIMAL({precision},{scale})", "", st.decimals(
            -bound, bound, allow_nan=False, allow_infinity=False, places=scale), nullable)
    if choice in ("float", "double"):
        width = 32 if choice == "float" else 64
        return choice.upper(), "", st.floats(width=width, allow_nan=False, allow_infinity=False,
                                             allow_subnormal=False), nullable
    if choice in ("char", "varchar", "text", "latin1"):
        ddl = {"char": f"CHAR({size})", "varchar": f"VARCHAR({size})", "text": "TEXT",
               "latin1": f"VARCHAR({size}) CHARACTER SET latin1"}[choice]
        alphabet = LATIN1 if choice == "latin1" else TEXT
        return ddl, "text", alphabet.map(lambda s: s[:size]), nullable
    if choice in ("binary", "varbinary", "blob"):
        ddl = {"binary": f"BINARY({size})", "varbinary": f"VARBINARY({size})", "blob": "BLOB"}
        return ddl[choice], "", st.binary(max_size=size), nullable
    if choice == "date":
        return "DATE", "date", st.dates(date(1000, 1, 1), date(9999, 12, 31)), nullable
    if choice == "datetime":
        return (f"DATETIME({fsp})", "datetime",
                st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59)), nullable)
    if choice == "timestamp":
        return (f"TIMESTAMP({fsp}) NULL", "timestamp",
                st.datetimes(datetime(1970, 1, 2), datetime(2038, 1, 18)), True)
    if choice == "time":
        limit = timedelta(hours=838, minutes=59, seconds=59)
        return f"TIME({fsp})", "", st.timedeltas(-limit, limit), nullable
    if choice == "year":
        return "YEAR", "", st.sampled_from([0]) | st.integers(1901, 2155), nullable
    if choice == "bit":
        bits = draw(st.integers(1, 64))
        return f"BIT({bits})", "bit", st.integers(0, 2**bits - 1), nullable
    members = draw(st.lists(st.text("abcdefgh", min_size=1, max_size=4), min_size=1,
                            max_size=8, unique=True))
    listed = ",".join(f"'{m}'" for m in members)
    if choice == "enum":
        return f"ENUM({listed})", "", st.sampled_from(members), nullable
    if choice == "set":
        return (f"SET({listed})", "set",
                st.sets(st.sampled_from(members)).map(lambda s: ",".join(sorted(s))), nullable)
    return "JSON", "json", JSON_VALUES.map(json.dumps), nullable


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[tuple[str, str, bool]], list[list[Any]],
                                      list[list[Any]], list[int]]:
    columns = draw(st.lists(column(), min_size=2, max_size=8))
    count = draw(st.integers(1, 5))

    def rows() -> list[list[Any]]:
        return [[draw(st.none() if nullable and draw(st.booleans()) else values)
                 for _, _, values, nullable in columns] for _ in range(count)]

    first, second = rows(), rows()
    deleted = draw(st.lists(st.integers(1, count), unique=True, max_size=count))
    return [(ddl, kind, nullable) for ddl, kind, _, nullable in columns], first, second, deleted


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(case=scenario())
def test_random_tables_decode_to_what_select_returns(harness: Any, case: Any) -> None:
    columns, first, second, deleted = case
    name = f"p{next(_tables)}"
    ddl = ", ".join(f"c{i} {kind}{'' if nullable else ' NOT NULL'}"
                    for i, (kind, _, nullable) in enumerate(columns))
    harness.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, {ddl})")
    table = Table(name, ("id",), {"id": ("id", documented(""))})
    for i, (kind, mapping, _) in enumerate(columns):
        expr = f"CAST(c{i} AS DOUBLE)" if kind == "FLOAT" else f"c{i}"
        table.columns[f"c{i}"] = (expr, documented(mapping))
    start = harness.end()

    def values(row: list[Any]) -> str:
        return ", ".join(literal(v) for v in row)

    steps = [
        ["SET SESSION sql_mode = ''", "BEGIN",
         *(f"INSERT INTO {name} VALUES ({n + 1}, {values(row)})" for n, row in enumerate(first)),
         "COMMIT"],
        *([f"UPDATE {name} SET " + ", ".join(f"c{i} = {literal(v)}" for i, v in enumerate(row))
           + f" WHERE id = {n + 1}"] for n, row in enumerate(second)),
        [f"UPDATE {name} SET id = id + 100 WHERE id = 1"],
        *([f"DELETE FROM {name} WHERE id IN ({n}, {n + 100})"] for n in deleted),
    ]
    run = run_steps(harness.db, [table], steps)
    events, _ = harness.drain(None, start=start)
    assert replay_and_compare(run, events) == len(events)
    harness.execute(f"DROP TABLE {name}")
