"""The row decoder against the real MariaDB: every column type at its edge values, NULL in
every column, empty strings and binaries, zero dates, every character set; inserts, updates
(with key changes), deletes, rollbacks and savepoints. Images must equal what SELECT
returns for the same rows, mapped only as the README documents (``mysql_differential``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from mysql_differential import Table, documented, replay_and_compare, run_steps


@dataclass(frozen=True)
class Col:
    name: str
    ddl: str
    values: tuple[str, ...]  # SQL literals, used in turn by rows 1, 2, ...
    kind: str = ""  # the documented mapping (see mysql_differential.documented)
    select: str = ""  # the SELECT expression giving the exact stored value

    def expr(self) -> str:
        return self.select.format(c=f"`{self.name}`") if self.select else f"`{self.name}`"


INT_EDGES = {
    "TINYINT": ("-128", "127", "0"), "TINYINT UNSIGNED": ("0", "255", "1"),
    "SMALLINT": ("-32768", "32767", "0"), "SMALLINT UNSIGNED": ("0", "65535", "7"),
    "MEDIUMINT": ("-8388608", "8388607", "-1"), "MEDIUMINT UNSIGNED": ("0", "16777215", "1"),
    "INT": ("-2147483648", "2147483647", "0"), "INT UNSIGNED": ("0", "4294967295", "1"),
    "BIGINT": ("-9223372036854775808", "9223372036854775807", "0"),
    "BIGINT UNSIGNED": ("0", "18446744073709551615", "1"),
}

COLUMNS = [
    *(Col(f"i{n}", ddl, values) for n, (ddl, values) in enumerate(INT_EDGES.items())),
    Col("bool", "BOOLEAN", ("1", "0", "-1")),
    Col("d65", "DECIMAL(65,30)", (f"{'9' * 35}.{'9' * 30}", f"-{'9' * 35}.{'9' * 30}", "0",
                                  f"-0.{'0' * 29}1", "1.5")),
    Col("d52", "DECIMAL(5,2)", ("999.99", "-999.99", "0", "0.01", "-0.50", "1.5")),
    Col("d10", "DECIMAL(10,0)", ("9999999999", "-9999999999", "0", "-1")),
    Col("d11", "DECIMAL(1,1)", ("0.9", "-0.9", "0")),
    Col("d189", "DECIMAL(18,9) UNSIGNED", ("999999999.999999999", "0.000000001", "0")),
    Col("f", "FLOAT", ("3.14", "-3.4028234e38", "1.17549435e-38", "0", "-1.5"),
        select="CAST({c} AS DOUBLE)"),
    Col("f73", "FLOAT(7,3)", ("1234.567", "-0.001"), select="CAST({c} AS DOUBLE)"),
    Col("dbl", "DOUBLE", ("2.718281828459045", "-1.7976931348623157e308", "2.2250738585072014e-308",
                          "0", "5e-324")),
    Col("b1", "BIT(1)", ("b'1'", "b'0'"), kind="bit"),
    Col("b9", "BIT(9)", ("b'100000001'", "b'0'", "b'111111111'"), kind="bit"),
    Col("b64", "BIT(64)", ("b'" + "1" * 64 + "'", "b'1'", "0"), kind="bit"),
    Col("c1", "CHAR(1)", ("'a'", "'é'", "''")),
    Col("c255", "CHAR(255)", ("REPEAT('😀', 255)", "'trailing  '", "''")),
    Col("vc", "VARCHAR(300)", ("REPEAT('x😀', 150)", "'héllo'", "''", "' lead'")),
    Col("tt", "TINYTEXT", ("'tiny'", "''")),
    Col("u14", "VARCHAR(20) CHARACTER SET utf16 COLLATE utf16_uca1400_ai_ci",  # id >= 2048
        ("'😀 uca'", "''")),
    Col("tx", "TEXT", ("REPEAT('t', 70000 DIV 3)", "''", "'😀 text'")),
    Col("mt", "MEDIUMTEXT", ("REPEAT('m', 70000)", "''")),
    Col("lt", "LONGTEXT", ("REPEAT('l', 300)", "''")),
    Col("bn", "BINARY(8)", ("X'0000000000000000'", "X'0102'", "X'ff00000000000001'", "''")),
    Col("bn1", "BINARY(1)", ("X'00'", "X'ff'")),
    Col("vb", "VARBINARY(10)", ("''", "X'00'", "X'ff00'", "X'00000000000000000000'")),
    Col("tb", "TINYBLOB", ("''", "X'00ff'")),
    Col("bl", "BLOB", ("''", "X'deadbeef'", "REPEAT(X'00', 1000)")),
    Col("mb", "MEDIUMBLOB", ("''", "REPEAT(X'ab', 70000)")),
    Col("lb", "LONGBLOB", ("''", "X'01'")),
    Col("dt", "DATE", ("'1000-01-01'", "'9999-12-31'", "'0000-00-00'", "'2024-02-29'",
                       "'2024-00-15'", "'2024-03-00'"), kind="date"),
    *(Col(f"dtm{p}", f"DATETIME({p})",
          ("'1000-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'0000-00-00 00:00:00'",
           "'2024-02-29 13:14:15.123456'", "'2024-00-01 01:02:03.5'"), kind="datetime")
      for p in range(7)),
    *(Col(f"ts{p}", f"TIMESTAMP({p}) NULL",
          ("'1970-01-01 00:00:01'", "'2038-01-19 03:14:07.999999'", "'0000-00-00 00:00:00'",
           "'2024-02-29 13:14:15.123456'"), kind="timestamp")
      for p in range(7)),
    *(Col(f"tm{p}", f"TIME({p})",
          ("'-838:59:59.999999'", "'838:59:59.999999'", "'00:00:00'", "'-00:00:00.000001'",
           "'-12:34:56.78'", "'-00:00:01'", "'12:34:56.5'"))
      for p in range(7)),
    Col("yr", "YEAR", ("1901", "2155", "0", "2024")),
    Col("en", "ENUM('x','y','z','')", ("'y'", "'z'", "''", "'x'")),
    Col("en300", "ENUM(" + ",".join(f"'v{i}'" for i in range(300)) + ")",
        ("'v299'", "'v0'", "'v255'")),
    Col("st", "SET('p','q','r')", ("'p,r'", "''", "'q'", "'p,q,r'"), kind="set"),
    Col("en1", "ENUM('café','naïve','x') CHARACTER SET latin1", ("'café'", "'naïve'", "'x'")),
    Col("st1", "SET('é','ü','😀') CHARACTER SET utf8mb4", ("'é,ü'", "'😀'", "''"), kind="set"),
    Col("st2", "SET('é','ü') CHARACTER SET latin1", ("'é,ü'", "'ü'"), kind="set"),
    Col("st64", "SET(" + ",".join(f"'m{i}'" for i in range(64)) + ")",
        ("'m63'", "'m0,m63'", "''", "'" + ",".join(f"m{i}" for i in range(64)) + "'"),
        kind="set"),
    Col("js", "JSON", ("'{\"a\": [1, 2, {\"b\": null}], \"c\": \"😀\", \"n\": 1.5}'", "'[]'",
                       "'\"text\"'", "'12345678901234567890'", "'{}'", "' [1] '"), kind="json"),
    Col("geo", "GEOMETRY", ("ST_GeomFromText('POINT(1 2)')",
                            "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')")),
    Col("pt", "POINT", ("POINT(-1.5, 2.25)",)),
    Col("ip4", "INET4", ("'1.2.3.4'", "'0.0.0.0'", "'255.255.255.255'")),
    Col("ip6", "INET6", ("'::'", "'::1'", "'::ffff:1.2.3.4'", "'::1.2.3.4'",
                         "'2001:db8::ff00:42:8329'", "'fe80::1:2:3:4'", "'1:2:3:4:5:6:7:8'",
                         "'1::'", "'0:0:1::'", "'::0.0.1.0'")),
    Col("uu", "UUID", ("'123e4567-e89b-12d3-a456-426655440000'",
                       "'00000000-0000-0000-0000-000000000000'",
                       "'6ccd780c-baba-4026-9564-5b8c656024db'",
                       "'ffffffff-ffff-ffff-ffff-ffffffffffff'")),
    Col("gv", "INT AS (i6 DIV 2) VIRTUAL", ()),
    Col("gs", "VARCHAR(40) AS (CONCAT('g', LEFT(vc, 5))) PERSISTENT", ()),
    Col("inv", "INT INVISIBLE DEFAULT 7", ("1", "-1")),
]
GENERATED = {"gv", "gs"}


def _types_table() -> tuple[str, Table, list[str]]:
    ddl = ", ".join(f"`{c.name}` {c.ddl}" for c in COLUMNS)
    create = f"CREATE TABLE types (id INT PRIMARY KEY, {ddl})"
    table = Table("types", ("id",), {"id": ("`id`", documented(""))})
    for col in COLUMNS:
        table.columns[col.name] = (col.expr(), documented(col.kind))
    rows = max(len(c.values) for c in COLUMNS)
    inserts = []
    settable = [c for c in COLUMNS if c.name not in GENERATED]
    names = ", ".join(f"`{c.name}`" for c in settable)
    for i in range(rows):
        values = ", ".join(c.values[i % len(c.values)] for c in settable)
        inserts.append(f"INSERT INTO types (id, {names}) VALUES ({i + 1}, {values})")
    nulls = ", ".join("NULL" for _ in settable)
    inserts.append(f"INSERT INTO types (id, {names}) VALUES (100, {nulls})")
    return create, table, inserts


def test_every_column_type_through_inserts_updates_and_deletes(harness: Any) -> None:
    create, table, inserts = _types_table()
    harness.execute(create)
    start = harness.end()
    mode = "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'"
    settable = [c for c in COLUMNS if c.name not in GENERATED and c.values]
    rotate = ", ".join(  # every row takes the next row's values: each value is updated to
        f"`{c.name}` = {c.values[1 % len(c.values)]}" for c in settable[::3])  # and from
    steps = [
        [mode, "BEGIN", *inserts, "COMMIT"],
        [mode, f"UPDATE types SET {rotate} WHERE id <= 3"],
        [mode, "UPDATE types SET id = id + 1000 WHERE id = 2"],  # a key change
        [mode, "UPDATE types SET i0 = NULL, vc = '', bl = '', dt = '0000-00-00' WHERE id = 100"],
        ["DELETE FROM types WHERE id IN (1, 1002)"],
        [mode, f"UPDATE types SET {', '.join(f'`{c.name}` = NULL' for c in settable)} "
               "WHERE id = 3"],
        ["DELETE FROM types"],
    ]
    run = run_steps(harness.db, [table], steps)
    events, _ = harness.drain(None, start=start)
    assert [e.action for e in events][:len(inserts)] == ["write"] * len(inserts)
    assert replay_and_compare(run, events) == len(events) > 10


def test_not_null_columns_and_a_composite_key(harness: Any) -> None:
    """Tables without nullable columns take the decoder's other path; composite keys in
    key order, not column order."""
    harness.execute(
        "CREATE TABLE nn (a INT NOT NULL, b VARCHAR(10) NOT NULL, c DATETIME(3) NOT NULL, "
        "d DECIMAL(9,3) NOT NULL, e BINARY(3) NOT NULL, PRIMARY KEY (b, a))")
    table = Table("nn", ("b", "a"), {c: (f"`{c}`", documented("datetime" if c == "c" else ""))
                                     for c in "abcde"})
    start = harness.end()
    steps = [
        ["INSERT INTO nn VALUES (1, 'x', '2024-01-01 00:00:00.5', 1.5, 'ab'), "
         "(2, '', '1000-01-01', -0.001, '')"],
        ["UPDATE nn SET b = 'y', e = X'000000' WHERE a = 1"],
        ["DELETE FROM nn WHERE a = 2"],
    ]
    run = run_steps(harness.db, [table], steps)
    events, _ = harness.drain(None, start=start)
    assert {e.pk_columns for e in events} == {("b", "a")}
    assert replay_and_compare(run, events) == 4


def test_rolled_back_rows_are_not_delivered_and_myisam_rows_are(harness: Any) -> None:
    """A savepoint rolled back in a transaction that also wrote a MyISAM table: MariaDB
    logs the rolled-back InnoDB rows followed by ROLLBACK TO. A transaction that created a
    temporary table is logged with its rows even when it rolls back."""
    harness.execute("CREATE TABLE inn (id INT PRIMARY KEY) ENGINE=InnoDB",
                    "CREATE TABLE myi (id INT PRIMARY KEY) ENGINE=MyISAM")
    tables = [Table("inn", ("id",), {"id": ("`id`", documented(""))}),
              Table("myi", ("id",), {"id": ("`id`", documented(""))})]
    start = harness.end()
    steps = [
        ["BEGIN", "INSERT INTO inn VALUES (10)", "SAVEPOINT s", "INSERT INTO inn VALUES (11)",
         "INSERT INTO myi VALUES (11)", "ROLLBACK TO SAVEPOINT s", "INSERT INTO inn VALUES (12)",
         "COMMIT"],
        ["BEGIN", "INSERT INTO inn VALUES (20)", "SAVEPOINT a", "INSERT INTO inn VALUES (21)",
         "SAVEPOINT b", "INSERT INTO myi VALUES (22)", "UPDATE inn SET id = 23 WHERE id = 20",
         "ROLLBACK TO SAVEPOINT a", "INSERT INTO inn VALUES (24)", "COMMIT"],
        ["BEGIN", "INSERT INTO inn VALUES (30)", "INSERT INTO myi VALUES (31)", "ROLLBACK"],
        ["BEGIN", "INSERT INTO inn VALUES (40)", "CREATE TEMPORARY TABLE tmp (x INT)",
         "INSERT INTO inn VALUES (41)", "ROLLBACK"],
        ["BEGIN", "INSERT INTO inn VALUES (50)", "SAVEPOINT s", "INSERT INTO inn VALUES (51)",
         "ROLLBACK TO SAVEPOINT s", "COMMIT"],  # InnoDB only: the server drops row 51 itself
        ["BEGIN", "DELETE FROM inn WHERE id = 10", "ROLLBACK"],  # never logged
    ]
    run = run_steps(harness.db, tables, steps)
    batches = harness.batches(None, start=start)
    events = [e for b in batches for e in b.events]
    assert replay_and_compare(run, events) == len(events)
    assert [(e.table, e.pk) for e in events] == [
        ("myi", 11), ("inn", 10), ("inn", 12), ("myi", 22), ("inn", 20), ("inn", 24),
        ("myi", 31), ("inn", 50)]
    # The savepoint transaction is one transaction (one GTID) ...
    first = [e for e in events if e.table == "inn" and e.pk in (10, 12)]
    assert first[0].txid == first[1].txid and first[0].txid.count("-") == 2
    # ... and positions fall only between transactions.
    assert_positions_between_transactions(harness.batches(None, start=start, batch_size=1))


def assert_positions_between_transactions(batches: list[Any]) -> None:
    events = [e for b in batches for e in b.events]
    seen = 0
    for batch in batches:
        seen += len(batch.events)
        if batch.position is not None and 0 < seen < len(events):
            assert events[seen - 1].txid != events[seen].txid, (seen, events[seen])


UNICODE_SAMPLE = "ASCII ~ Latin é ß Ω Ж א ع ไทย 日本語 한국어 中文 ☃ €"
ASTRAL_SAMPLE = " 😀 𝄞 𠀋"


def _charset_samples(cur: Any, charset: str, maxlen: int) -> list[str]:
    """SQL expressions with text in ``charset``: for single-byte sets every byte
    0x00-0xFF; for the other sets a spread of the byte sequences the server maps (asked of
    the server itself); for Unicode sets text from many scripts."""
    if charset in ("utf8mb4", "utf16", "utf16le", "utf32"):
        return [f"_utf8mb4'{UNICODE_SAMPLE + ASTRAL_SAMPLE}'"]
    if charset in ("utf8mb3", "ucs2"):
        return [f"_utf8mb4'{UNICODE_SAMPLE}'"]
    if charset == "binary":
        return []
    if maxlen == 1:
        return [f"CAST(X'{bytes(range(256)).hex()}' AS CHAR CHARACTER SET {charset})"]
    candidates = [bytes([a]) for a in range(0xA1, 0xE0, 5)]
    candidates += [bytes([a, b]) for a in range(0x81, 0xFF, 3) for b in range(0x40, 0xFF, 11)]
    if charset in ("ujis", "eucjpms"):
        candidates += [bytes([0x8F, a, b])
                       for a in range(0xA1, 0xFF, 7) for b in range(0xA1, 0xFF, 9)]
    good = []
    for low in range(0, len(candidates), 200):
        chunk = candidates[low:low + 200]
        cur.execute("SELECT " + ", ".join(
            f"CONVERT(CAST(X'{seq.hex()}' AS CHAR CHARACTER SET {charset}) USING utf8mb4)"
            for seq in chunk))
        good += [seq for seq, text in zip(chunk, cur.fetchone(), strict=True)
                 if text is not None and len(text) == 1 and text not in "?\ufffd"]
    return [f"CAST(X'{b''.join(good[i::3]).hex()}' AS CHAR CHARACTER SET {charset})"
            for i in range(3)]


def test_every_character_set(harness: Any) -> None:
    """Every character set the server has: text as SELECT converts it to utf8mb4; a byte a
    single-byte set cannot map is one lone surrogate U+DC00 + byte (SELECT shows ``?``)."""
    rows = harness.server.execute("SELECT CHARACTER_SET_NAME, MAXLEN FROM "
                                  "information_schema.CHARACTER_SETS", database=None)
    charsets = sorted((str(name), int(maxlen)) for name, maxlen in rows)
    assert len(charsets) >= 40
    with harness.db.connect(autocommit=True) as conn, conn.cursor() as cur:
        samples = {name: _charset_samples(cur, name, maxlen) for name, maxlen in charsets}
    samples = {name: values for name, values in samples.items() if values}
    ddl = ", ".join(f"c_{name} VARCHAR(700) CHARACTER SET {name}" for name in samples)
    harness.execute(f"CREATE TABLE cs (id INT PRIMARY KEY, {ddl}) DEFAULT CHARSET = latin1",
                    "CREATE TABLE big (id INT PRIMARY KEY, b VARCHAR(10) CHARACTER SET big5)")
    table = Table("cs", ("id",), {"id": ("id", documented(""))})
    table.columns.update({f"c_{name}": (f"c_{name}", documented("text")) for name in samples})
    start = harness.end()
    inserts = []
    for row in range(3):
        values = ", ".join(v[row % len(v)] for v in samples.values())
        inserts.append(f"INSERT INTO cs VALUES ({row + 1}, {values})")
    empty = ", ".join("''" for _ in samples)
    steps = [
        ["SET SESSION sql_mode = ''", *inserts, f"INSERT INTO cs VALUES (4, {empty})"],
        ["UPDATE cs SET c_latin1 = X'618162', c_ascii = X'61ff' WHERE id = 4",
         "INSERT INTO big VALUES (1, X'a15a41')"],
        ["UPDATE cs SET id = 5 WHERE id = 1"],
        ["DELETE FROM cs WHERE id IN (2, 4)"],
    ]
    run = run_steps(harness.db, [table], steps)
    events, _ = harness.drain(None, start=start)
    assert replay_and_compare(run, events) == len(events) == 9
    unmappable = events[4].after
    assert unmappable["c_latin1"] == "a\x81b"  # MariaDB's latin1 maps 0x81 to U+0081
    assert unmappable["c_ascii"] == "a\udcff"  # SELECT: "a?"
    # one big5 character the server cannot map (SELECT: "?A"): its two bytes kept
    assert events[5].after == {"id": 1, "b": "\udca1\udc5aA"}


def test_library_reference_decoder_agrees_except_for_its_known_mistakes(harness: Any) -> None:
    """``decoder = "library"`` decodes rows with python-mysql-replication; both decoders
    give the same images except where the library is wrong."""
    harness.execute(
        "CREATE TABLE ref (id INT PRIMARY KEY, i BIGINT UNSIGNED, d DECIMAL(30,10), "
        "f DOUBLE, v VARCHAR(20), bl BLOB, dt DATE, dtm DATETIME(6), e ENUM('a','b'), "
        "s SET('x','y'), j JSON, bt BIT(10), ts TIMESTAMP(3) NULL, tm TIME(2), "
        "yr YEAR, bn BINARY(4), vb VARBINARY(4), u16 VARCHAR(10) CHARACTER SET utf16, "
        "el ENUM('café', 'x') CHARACTER SET latin1)")
    start = harness.end()
    harness.execute(
        "SET SESSION sql_mode = ''",
        "INSERT INTO ref VALUES (1, 18446744073709551615, -12345678901234567890.0123456789, "
        "2.5, 'héllo 😀', X'00ff', '2024-02-29', '2024-02-29 13:14:15.123456', 'b', 'x,y', "
        "'{\"k\": [1, \"😀\"]}', b'1010000001', '2024-01-01 00:00:00.5', '12:34:56.78', 2024, "
        "X'01020304', X'ff', 'ok', 'x'), "
        "(2, 0, 0, 0, '', '', '1000-01-01', '1000-01-01', 'a', 'x', '[]', b'0', "
        "'0000-00-00 00:00:00', '-00:00:00.01', 0, X'00000000', '', _utf8mb4'😀x', 'café')")
    ours, _ = harness.drain(None, start=start)
    theirs, _ = harness.drain(None, start=start, decoder="library")
    assert [(e.action, e.pk) for e in ours] == [(e.action, e.pk) for e in theirs]
    # where the library is right, it agrees (it reads utf16 as little-endian)
    assert {k: v for k, v in ours[0].after.items() if k != "u16"} == \
        {k: v for k, v in theirs[0].after.items() if k != "u16"}
    assert (ours[0].after["u16"], theirs[0].after["u16"]) == ("ok", "漀欀")
    mine, library = ours[1].after, theirs[1].after
    assert {k for k in mine if mine[k] != library[k]} == {"bl", "ts", "tm", "yr", "bn", "vb",
                                                          "u16", "el"}
    assert (mine["bl"], library["bl"]) == (b"", "")  # an empty BLOB came as the string ''
    assert (mine["bn"], library["bn"]) == (b"\0\0\0\0", "")  # all-zero BINARY lost its bytes
    assert (mine["vb"], library["vb"]) == (b"", "")
    assert mine["ts"] is None and library["ts"].year == 1970  # the zero TIMESTAMP
    assert (mine["yr"], library["yr"]) == (0, 1900)
    assert mine["tm"] == -timedelta(milliseconds=10) != library["tm"]  # negative fraction
    assert mine["u16"] == "😀x" != library["u16"]
    assert (mine["el"], library["el"]) == ("café", "")  # a latin1 ENUM member read as UTF-8


def test_update_after_images_share_the_unchanged_immutable_values(harness: Any) -> None:
    """The after image reuses the before image's value of a column whose bytes did not
    change, unless the value is mutable (JSON, SET); NULLs never leak between rows."""
    harness.execute("CREATE TABLE u (id INT PRIMARY KEY, d DECIMAL(10,2), t VARCHAR(20), "
                    "ts DATETIME(6), j JSON, s SET('a','b'), n INT)")
    start = harness.end()
    harness.execute(
        "INSERT INTO u VALUES (1, 1.50, 'same', '2024-01-01 00:00:00.5', '{\"k\": 1}', 'a', 1), "
        "(2, NULL, NULL, NULL, NULL, NULL, 2)",
        "UPDATE u SET n = n + 10",  # nothing else changes
        "UPDATE u SET d = 1.50, t = 'same' WHERE id = 2",  # NULL before, bytes of row 1
    )
    events, _ = harness.drain(None, start=start)
    first, second, null_to_value = events[2], events[3], events[4]
    before, after = first.before, first.after
    for column in ("d", "t", "ts"):
        assert after[column] is before[column]  # shared, immutable
    for column in ("j", "s"):
        assert after[column] == before[column] and after[column] is not before[column]
    assert second.before["d"] is None and second.after["d"] is None
    assert null_to_value.before == {"id": 2, "d": None, "t": None, "ts": None, "j": None,
                                    "s": None, "n": 12}
    assert null_to_value.after["d"] == Decimal("1.50") and null_to_value.after["t"] == "same"
