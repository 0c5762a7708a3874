"""The benchmark's workloads, each written as a binlog range on the bench MariaDB.

Two row shapes:

* ``narrow``: 7 columns of mixed types (INT key, VARCHAR, DECIMAL, INT, DATETIME(6),
  TINYINT, TEXT), about 90 bytes per row image;
* ``wide``: 30 columns (integers, DECIMAL, DOUBLE, FLOAT, ENUM, DATETIME, TIMESTAMP, DATE,
  TIME, two JSON, two TEXT, many VARCHARs), about 1.2 KB per row image.

Two transaction shapes over N rows: ``small`` (transactions of ``SMALL_TXN`` rows each)
and ``huge`` (one transaction). Either way the range holds N inserts, N updates and N/2
deletes (2.5 N row events, updates carrying before and after images). Each workload has
its own table, so a run reads exactly its own rows; it is prepared right before it is
measured, so its range ends at the binlog's end, where ``meepo run --once`` stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _env import Servers

SMALL_TXN = 5

NARROW_MYSQL = """(
  id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(10,2), qty INT,
  created DATETIME(6), active TINYINT, note TEXT)"""
NARROW_PG = """(
  id INT PRIMARY KEY, name VARCHAR(64), price NUMERIC(10,2), qty INT,
  created TIMESTAMP(6), active SMALLINT, note TEXT)"""
NARROW_SELECT = """seq, CONCAT('name ', seq), seq % 10000 + 0.25, seq % 100,
  '2024-01-01 10:00:00.123456', seq % 2, CONCAT('a note about row ', seq)"""
NARROW_UPDATE = "qty = qty + 1, name = CONCAT(name, '!')"

WIDE_MYSQL = """(
  id BIGINT PRIMARY KEY, user_id INT, sku VARCHAR(32), title VARCHAR(200),
  description TEXT, price DECIMAL(12,2), cost DECIMAL(12,4), qty INT, weight DOUBLE,
  ratio FLOAT, active TINYINT, status ENUM('new','paid','shipped','done'),
  created DATETIME(6), updated TIMESTAMP(6) NULL, birthday DATE, duration TIME,
  attrs JSON, tags JSON, notes TEXT, email VARCHAR(120), phone VARCHAR(32),
  country CHAR(2), city VARCHAR(64), street VARCHAR(128), zip VARCHAR(16),
  score SMALLINT, rank_no BIGINT, flags INT UNSIGNED, uuid CHAR(36), comment VARCHAR(255))"""
WIDE_PG = """(
  id BIGINT PRIMARY KEY, user_id INT, sku VARCHAR(32), title VARCHAR(200),
  description TEXT, price NUMERIC(12,2), cost NUMERIC(12,4), qty INT,
  weight DOUBLE PRECISION, ratio REAL, active SMALLINT, status TEXT,
  created TIMESTAMP(6), updated TIMESTAMPTZ, birthday DATE, duration INTERVAL,
  attrs JSONB, tags JSONB, notes TEXT, email VARCHAR(120), phone VARCHAR(32),
  country CHAR(2), city VARCHAR(64), street VARCHAR(128), zip VARCHAR(16),
  score SMALLINT, rank_no BIGINT, flags BIGINT, uuid CHAR(36), comment VARCHAR(255))"""
WIDE_SELECT = """seq, seq % 5000, CONCAT('SKU-', LPAD(seq, 10, '0')),
  CONCAT('Product number ', seq, ' with a reasonably descriptive title'),
  REPEAT(CONCAT('Description of product ', seq, '. '), 6),
  seq % 100000 + 0.99, seq % 1000 + 0.1234, seq % 500, seq * 0.5, seq % 7 / 3,
  seq % 2, ELT(seq % 4 + 1, 'new', 'paid', 'shipped', 'done'),
  '2024-01-01 10:00:00.123456', '2024-02-03 04:05:06.654321',
  DATE_ADD('1970-01-01', INTERVAL seq % 20000 DAY), SEC_TO_TIME(seq % 86400),
  JSON_OBJECT('color', ELT(seq % 3 + 1, 'red', 'green', 'blue'), 'size', seq % 50,
              'dims', JSON_ARRAY(seq % 10, seq % 20, seq % 30), 'gift', seq % 2 = 0,
              'origin', JSON_OBJECT('country', 'NL', 'plant', seq % 9)),
  JSON_ARRAY('tag', CONCAT('t', seq % 10), CONCAT('g', seq % 100)),
  REPEAT('Free-form notes for this row. ', 10),
  CONCAT('user', seq, '@example.com'), CONCAT('+31 6 ', LPAD(seq, 8, '0')), 'NL',
  'Amsterdam', CONCAT(seq % 400, ' Keizersgracht'), CONCAT(1000 + seq % 9000, ' AB'),
  seq % 30000, seq * 1000, seq % 4000000000, UUID(),
  CONCAT('comment ', seq)"""
WIDE_UPDATE = """qty = qty + 1, title = CONCAT(title, '!'),
  attrs = JSON_SET(attrs, '$.size', qty + 1), updated = '2024-03-04 05:06:07.000001'"""


@dataclass(frozen=True)
class Shape:
    name: str
    mysql_columns: str
    pg_columns: str
    select: str
    update: str


SHAPES = {
    "narrow": Shape("narrow", NARROW_MYSQL, NARROW_PG, NARROW_SELECT, NARROW_UPDATE),
    "wide": Shape("wide", WIDE_MYSQL, WIDE_PG, WIDE_SELECT, WIDE_UPDATE),
}


@dataclass(frozen=True)
class Workload:
    """One shape x one transaction size x N rows, prepared as a binlog range."""

    shape: Shape
    txn: str  # "small" | "huge" | "big" (one UPDATE of every row) | "idle" (nothing)
    rows: int

    @property
    def name(self) -> str:
        if self.txn == "big":
            return f"{self.shape.name}/one {self.rows:,}-row UPDATE"
        return f"{self.shape.name}/{self.txn} txns"

    @property
    def table(self) -> str:
        return f"{self.shape.name}_{self.txn}"

    @property
    def events(self) -> int:
        if self.txn == "big":
            return self.rows
        return 2 * self.rows + self.rows // 2

    @property
    def final_rows(self) -> int:
        return self.rows - self.rows // 2


@dataclass(frozen=True)
class Prepared:
    workload: Workload
    start: tuple[str, int]
    end: tuple[str, int]
    seconds: float


def create_tables(env: Servers, table: str, shape: Shape) -> None:
    """The table on MariaDB (before the range starts) and the replica table on PostgreSQL."""
    with env.mysql() as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        cur.execute(f"CREATE TABLE `{table}` {shape.mysql_columns}")
    env.pg_execute(f"DROP TABLE IF EXISTS {table}")
    env.pg_execute(f"CREATE TABLE {table} {shape.pg_columns}")


def prepare(env: Servers, workload: Workload) -> Prepared:
    """Write the workload's changes; return the binlog range they occupy."""
    import time

    table, shape, rows = workload.table, workload.shape, workload.rows
    create_tables(env, table, shape)
    began = time.perf_counter()
    with env.mysql() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION max_statement_time = 0")
        start = env.binlog_end()
        if workload.txn == "huge":
            conn.begin()
            _changes(cur, table, shape, rows, 1000)
            conn.commit()
        else:
            _changes(cur, table, shape, rows, SMALL_TXN)  # autocommit: one txn per statement
    end = env.binlog_end()
    return Prepared(workload, start, end, time.perf_counter() - began)


def _changes(cur: object, table: str, shape: Shape, rows: int, step: int) -> None:
    execute = cur.execute  # type: ignore[attr-defined]
    for low in range(1, rows + 1, step):
        high = min(rows, low + step - 1)
        execute(f"INSERT INTO `{table}` SELECT {shape.select} FROM seq_{low}_to_{high}")
    for low in range(1, rows + 1, step):
        execute(f"UPDATE `{table}` SET {shape.update} WHERE id BETWEEN {low} AND "
                f"{low + step - 1}")
    for low in range(1, rows // 2 + 1, step):
        execute(f"DELETE FROM `{table}` WHERE id BETWEEN {low} AND "
                f"{min(rows // 2, low + step - 1)}")


def prepare_big_update(env: Servers, rows: int) -> Prepared:
    """A ``rows``-row narrow table, then ONE ``UPDATE`` of every row (one transaction)."""
    import time

    shape = SHAPES["narrow"]
    workload = Workload(shape, "big", rows)
    create_tables(env, workload.table, shape)
    with env.mysql() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION max_statement_time = 0")
        for low in range(1, rows + 1, 100_000):
            high = min(rows, low + 99_999)
            cur.execute(f"INSERT INTO `{workload.table}` SELECT {shape.select} "
                        f"FROM seq_{low}_to_{high}")
        start = env.binlog_end()
        began = time.perf_counter()
        cur.execute(f"UPDATE `{workload.table}` SET qty = qty + 1")
        seconds = time.perf_counter() - began
    return Prepared(workload, start, env.binlog_end(), seconds)


def prepare_latency_table(env: Servers) -> str:
    table = "latency"
    create_tables(env, table, SHAPES["narrow"])
    return table
