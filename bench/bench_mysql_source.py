"""Benchmark: the ``mysql`` source against raw python-mysql-replication decoding.

Prepares a binlog of N rows on a 7-column table of mixed types (N inserts, then N
updates, then N deletes, 1,000 rows per statement), then, side by side in one run:

* raw: ``BinLogStreamReader`` over exactly that binlog range, decoding every row
  (``event.rows``), in this process;
* meepo: ``meepo run bench --once`` in a subprocess, ``mysql`` source -> ``null`` sink,
  wall-clock time including interpreter start. Installed plugins that the pipeline does
  not use are disabled (``MEEPO_DISABLE_PLUGINS``) so their import time is not counted;
  the script prints that start-up cost separately.

``--no-speedups`` runs meepo with ``MEEPO_MYSQL_NO_SPEEDUPS=1``: without the faster
drop-in helpers meepo installs into python-mysql-replication's row decoder and without
``gc.freeze()`` (see ``meepo_mysql.decode.install_fixes``), to show what they are worth.

Both wall-clock and CPU time (the subprocess's user+sys) are reported: CPU time is far
less disturbed by other load on a shared machine.

Each is run ``--repeat`` times, alternating, and the best run of each is compared
(the machine is shared; best-of is the least noisy). Prints rows/s and the ratio
meepo/raw (target >= 0.9).

``--big-update M`` also measures one M-row UPDATE (the issue asks for 1,000,000) through
``meepo run --once`` into the null sink: rows/s, the subprocess's peak RSS, and the
checkpoint, which must be the position after that transaction.

Usage::

    python bench/bench_mysql_source.py --rows 100000
    python bench/bench_mysql_source.py --rows 100000 --big-update 1000000
    python bench/bench_mysql_source.py --dsn mysql://root:pw@127.0.0.1:3306   # own server
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
from meepo_testkit.servers import MariaDBServer
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from meepo_core.testing import meepo_command, write_config

DATABASE = "meepo_bench"
TABLE = """CREATE TABLE t (
  id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(10,2), qty INT,
  created DATETIME(6), active TINYINT, note TEXT)"""
CHUNK = 1000


class Server:
    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self.dsn = dsn
        self.settings = {
            "host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
            "user": unquote(parts.username or "root"), "password": unquote(parts.password or ""),
        }

    def connect(self, **kwargs: Any) -> Any:
        return pymysql.connect(autocommit=True, charset="utf8mb4", **self.settings, **kwargs)

    def end(self) -> tuple[str, int]:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            file, pos = cur.fetchone()[:2]
        return str(file), int(pos)


@contextlib.contextmanager
def server_for(args: argparse.Namespace) -> Iterator[Server]:
    if args.dsn:
        yield Server(args.dsn)
        return
    with (
        tempfile.TemporaryDirectory(prefix="meepo-bench-") as tmp,
        MariaDBServer(Path(tmp)) as mariadb,
    ):
        yield Server(mariadb.dsn)


def prepare(server: Server, rows: int) -> tuple[tuple[str, int], tuple[str, int]]:
    """Insert, update, then delete ``rows`` rows; return the binlog range they occupy."""
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cur.execute(f"CREATE DATABASE {DATABASE}")
        cur.execute(f"USE {DATABASE}")
        cur.execute(TABLE)
        start = server.end()
        for low in range(0, rows, CHUNK):
            values = ",".join(
                f"({i}, 'name {i}', {i % 10000}.25, {i % 100}, "
                f"'2024-01-01 10:00:00.123456', {i % 2}, 'a note about row {i}')"
                for i in range(low, min(rows, low + CHUNK))
            )
            cur.execute(f"INSERT INTO t VALUES {values}")
        for low in range(0, rows, CHUNK):
            cur.execute(f"UPDATE t SET qty = qty + 1, name = CONCAT(name, '!') "
                        f"WHERE id >= {low} AND id < {low + CHUNK}")
        for low in range(0, rows, CHUNK):
            cur.execute(f"DELETE FROM t WHERE id >= {low} AND id < {low + CHUNK}")
    return start, server.end()


def raw_decode(server: Server, start: tuple[str, int]) -> tuple[int, float, float]:
    """Rows decoded, wall and CPU seconds, python-mysql-replication alone (non-blocking)."""
    began, cpu = time.perf_counter(), time.process_time()
    reader = BinLogStreamReader(
        connection_settings=dict(server.settings), server_id=4_000_000_001,
        log_file=start[0], log_pos=start[1], resume_stream=True, blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[DATABASE], enable_logging=False,
    )
    rows = 0
    try:
        for event in reader:
            rows += len(event.rows)
    finally:
        reader.close()
    return rows, time.perf_counter() - began, time.process_time() - cpu


def unused_plugins() -> str:
    from importlib.metadata import entry_points

    return ",".join(ep.name for ep in entry_points(group="meepo") if ep.name != "mysql")


class Run:
    def __init__(self, rows: int, wall: float, cpu: float, rss_kib: int, saved: Any) -> None:
        self.rows, self.wall, self.cpu, self.rss_kib, self.saved = rows, wall, cpu, rss_kib, saved


def meepo_run(
    server: Server, workdir: Path, start: tuple[str, int], batch_size: int = 1000,
    *, all_plugins: bool = False, no_speedups: bool = False,
) -> Run:
    """``meepo run bench --once`` into the null sink: rows, wall and CPU seconds, peak RSS
    and the saved checkpoint."""
    checkpoint = workdir / ".meepo" / "bench.json"
    checkpoint.unlink(missing_ok=True)
    source = {"type": "mysql", "dsn": server.dsn, "tables": [f"{DATABASE}.t"],
              "start": f"{start[0]}:{start[1]}"}
    write_config(workdir, {"bench": {
        "source": source, "sinks": [{"type": "null"}], "checkpoint": f"file:{checkpoint}",
        "batch_size": batch_size, "status_interval": 0,
    }})
    began = time.perf_counter()
    env = dict(os.environ)
    if not all_plugins:
        env["MEEPO_DISABLE_PLUGINS"] = unused_plugins()
    if no_speedups:
        env["MEEPO_MYSQL_NO_SPEEDUPS"] = "1"
    proc = subprocess.Popen(meepo_command("run", "bench", "--once"), cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"meepo run failed ({proc.returncode}):\n{stderr}")
    match = re.search(r"bench: (\d+) events in", stderr)
    if match is None:
        raise SystemExit(f"no summary line from meepo:\n{stderr}")
    saved = json.loads(checkpoint.read_text())["position"] if checkpoint.exists() else None
    cpu = usage.ru_utime + usage.ru_stime
    return Run(int(match.group(1)), seconds, cpu, int(usage.ru_maxrss), saved)


def big_update(server: Server, workdir: Path, rows: int) -> None:
    with server.connect(database=DATABASE) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS t")
        cur.execute(TABLE)
        cur.execute("SET SESSION max_statement_time = 0")
        cur.execute(
            "INSERT INTO t SELECT seq, CONCAT('name ', seq), seq % 10000 + 0.25, seq % 100, "
            "'2024-01-01 10:00:00.123456', seq % 2, CONCAT('a note about row ', seq) "
            f"FROM seq_1_to_{rows}"
        )
        start = server.end()
        began = time.perf_counter()
        cur.execute("UPDATE t SET qty = qty + 1")  # one transaction of `rows` rows
        print(f"big update: {rows:,}-row UPDATE committed in {time.perf_counter() - began:.1f}s")
    end = server.end()
    big = meepo_run(server, workdir, start)
    print(f"big update: meepo run --once -> null: {big.rows:,} rows in {big.wall:.1f}s = "
          f"{big.rows / big.wall:,.0f} rows/s, peak RSS {big.rss_kib / 1024:.0f} MiB")
    print(f"big update: checkpoint {big.saved} (binlog end after the UPDATE: "
          f"{end[0]}:{end[1]})")
    idle = meepo_run(server, workdir, end)
    print(f"big update: for comparison, meepo run --once over nothing peaks at "
          f"{idle.rss_kib / 1024:.0f} MiB RSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="N (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument("--dsn", help="use this server instead of starting a MariaDB")
    parser.add_argument("--no-speedups", action="store_true",
                        help="run meepo without its python-mysql-replication speed-ups")
    parser.add_argument("--big-update", type=int, default=0, metavar="M",
                        help="also stream one M-row UPDATE and report peak RSS")
    args = parser.parse_args()
    with server_for(args) as server, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        began = time.perf_counter()
        start, end = prepare(server, args.rows)
        print(f"prepared {args.rows:,} inserts + updates + deletes ({3 * args.rows:,} row "
              f"events) in {time.perf_counter() - began:.1f}s: {start[0]}:{start[1]} .. "
              f"{end[0]}:{end[1]}")
        idle_all = meepo_run(server, workdir, end, all_plugins=True)
        idle = meepo_run(server, workdir, end)
        print(f"meepo start-up and shutdown over an empty range: {idle.wall:.2f}s "
              f"({idle_all.wall:.2f}s with every installed plugin loaded)")
        best: dict[str, float] = {}
        for run in range(1, args.repeat + 1):
            rows, raw_wall, raw_cpu = raw_decode(server, start)
            meepo = meepo_run(server, workdir, start, no_speedups=args.no_speedups)
            if meepo.rows != rows:
                raise SystemExit(f"meepo delivered {meepo.rows} rows, raw decoding saw {rows}")
            rates = {"raw wall": rows / raw_wall, "raw cpu": rows / raw_cpu,
                     "meepo wall": rows / meepo.wall, "meepo cpu": rows / meepo.cpu}
            for key, rate in rates.items():
                best[key] = max(best.get(key, 0.0), rate)
            print(f"run {run}: raw python-mysql-replication {rates['raw wall']:,.0f} rows/s "
                  f"({raw_wall:.1f}s wall, {raw_cpu:.1f}s CPU); meepo run --once -> null "
                  f"{rates['meepo wall']:,.0f} rows/s ({meepo.wall:.1f}s wall, "
                  f"{meepo.cpu:.1f}s CPU, peak RSS {meepo.rss_kib / 1024:.0f} MiB)")
        print(f"best wall: raw {best['raw wall']:,.0f} rows/s, meepo {best['meepo wall']:,.0f} "
              f"rows/s, ratio {best['meepo wall'] / best['raw wall']:.2f} (target >= 0.90)")
        print(f"best CPU:  raw {best['raw cpu']:,.0f} rows/s, meepo {best['meepo cpu']:,.0f} "
              f"rows/s, ratio {best['meepo cpu'] / best['raw cpu']:.2f}")
        if args.big_update:
            big_update(server, workdir, args.big_update)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
