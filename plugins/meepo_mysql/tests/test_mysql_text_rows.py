"""Snapshot chunks are read through meepo's generated row parser (meepo_mysql.text_rows):
its rows must equal pymysql's own ``fetchall()`` of the same query, value for value and
type for type, for every column type, every character set, NULLs and long values."""

from __future__ import annotations

from typing import Any

from meepo_mysql.compat import query_rows
from meepo_mysql.text_rows import fast_datetime
from pymysql.converters import convert_datetime

from .test_mysql_decoder import _charset_samples, _types_table


def both(db: Any, sql: str) -> tuple[Any, Any]:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute(sql)
        expected = cur.fetchall()
        found = query_rows(conn, sql)
        cur.execute("SELECT 1")  # the connection is still in step after our read
        assert cur.fetchall() == ((1,),)
    return expected, found


def typed(rows: Any) -> list[list[tuple[type, Any]]]:
    return [[(type(value), value) for value in row] for row in rows]


def test_every_type_equals_pymysqls_rows(mysql_db: Any) -> None:
    create, _, inserts = _types_table()
    mysql_db.execute(create)
    for insert in inserts:
        mysql_db.execute(insert)
    mysql_db.execute("INSERT INTO types (id) VALUES (1000)")  # NULLs and defaults
    expected, found = both(mysql_db, "SELECT * FROM types ORDER BY id")
    assert len(found) == len(inserts) + 1
    assert typed(found) == typed(expected)
    # the snapshot's own shapes: text as stored bytes, FLOAT as DOUBLE
    expected, found = both(mysql_db, "SELECT id, CAST(id AS BINARY), CAST(1.5 AS DOUBLE) "
                                     "FROM types ORDER BY id")
    assert typed(found) == typed(expected)


def test_every_character_set_and_long_values(mysql_db: Any) -> None:
    with mysql_db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT CHARACTER_SET_NAME, MAXLEN FROM information_schema.CHARACTER_SETS")
        charsets = list(cur.fetchall())
        selects = [f"SELECT {expr}, CAST({expr} AS BINARY)" for name, maxlen in charsets
                   for expr in _charset_samples(cur, str(name), int(maxlen))]
    assert len(selects) > 30
    for select in selects:
        expected, found = both(mysql_db, select)
        assert typed(found) == typed(expected), select
    # length prefixes of 1, 3, 4 and 9 bytes (from 16 MiB: several packets too), and NULL
    mysql_db.execute("SET GLOBAL max_allowed_packet = 67108864")  # for new connections
    mysql_db.execute("CREATE TABLE long_values (id INT PRIMARY KEY, t LONGTEXT, b LONGBLOB)")
    for i, size in enumerate((0, 250, 251, 300, 65_535, 70_000, 17_000_000)):
        mysql_db.execute("INSERT INTO long_values VALUES (%s, REPEAT('é', %s), REPEAT(X'FF', %s))",
                         i, size, size)
    mysql_db.execute("INSERT INTO long_values VALUES (99, NULL, NULL)")
    expected, found = both(mysql_db, "SELECT * FROM long_values ORDER BY id")
    assert typed(found) == typed(expected)
    assert [len(row[2] or b"") for row in found][-2] == 17_000_000


def test_fast_datetime_equals_pymysqls_convert_datetime() -> None:
    for text in ("2024-02-29 23:59:59", "2024-02-29 23:59:59.000001", "0000-00-00 00:00:00",
                 "2023-02-29 10:00:00", "2024-00-10 10:00:00", "9999-12-31 23:59:59.999999",
                 "2024-01-02 03:04:05.5", "2024-01-02T03:04:05", "2024-01-02",
                 "0001-01-01 00:00:00", "2024-13-01 00:00:00.000000"):
        assert fast_datetime(text.encode()) == convert_datetime(text), text
        assert type(fast_datetime(text.encode())) is type(convert_datetime(text)), text


def test_without_pymysqls_internals_fetchall_is_used(mysql_db: Any, monkeypatch: Any) -> None:
    """A pymysql without the internals query_rows builds on (faked: this one has them)."""
    from meepo_mysql import compat

    monkeypatch.setattr(compat, "_PARSED_ROWS", False)
    mysql_db.execute("CREATE TABLE fallback (id INT PRIMARY KEY, t VARCHAR(8))")
    mysql_db.execute("INSERT INTO fallback VALUES (1, 'a%b'), (2, NULL)")
    expected, found = both(mysql_db, "SELECT * FROM fallback WHERE t LIKE '%' OR t IS NULL")
    assert found == expected == ((1, "a%b"), (2, None))
