"""Benchmark: snapshot throughput of the ``mysql`` source against a raw keyset scan.

On a private MariaDB, a 7-column table of N rows; then, side by side in one run, best of
``--repeat`` rounds, alternating:

* raw: pymysql reads the table in primary-key order in chunks of ``--chunk`` rows by keyset
  pagination (``WHERE id > last ORDER BY id LIMIT n``), the same chunks meepo reads, in a
  subprocess (``--raw-child``) so interpreter start counts on both sides;
* meepo: ``meepo run snap`` with ``snapshot = "initial_only"`` into the ``null`` sink, in a
  subprocess: the whole DBLog cycle per chunk (two watermarks, the read, the rows through
  the runner), ending when the copy is done;
* reference: ``mariadb-dump --single-transaction`` of the table to /dev/null (C).

Reports rows/s, meepo/raw (target >= 0.7) and meepo/mariadb-dump, and the meepo run's peak
RSS. ``--rss-rows 1000000`` also snapshots a table of that many rows and reports the peak
RSS (target < 150 MiB). Results go to ``bench/results/snapshot.json``.

    python bench/bench_snapshot.py --rows 200000
    python bench/bench_snapshot.py --rows 200000 --rss-rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from meepo_testkit.servers import MariaDBServer

from meepo_core.testing import meepo_command, write_config

DATABASE = "meepo_bench"
TABLE = """CREATE TABLE {name} (
  id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(10,2), qty INT,
  created DATETIME(6), active TINYINT, note TEXT)"""
RESULTS = Path(__file__).parent / "results" / "snapshot.json"


def fill(server: MariaDBServer, table: str, rows: int) -> None:
    server.execute(f"DROP TABLE IF EXISTS {table}", database=DATABASE)
    server.execute(TABLE.format(name=table), database=DATABASE)
    with server.connect(DATABASE, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")  # the copy reads the table, not the binlog
        for first in range(1, rows + 1, 10_000):
            cur.executemany(
                f"INSERT INTO {table} VALUES (%s, %s, %s, %s, NOW(6), %s, %s)",
                [(i, f"name {i}", i % 1000 / 7, i % 97, i % 2, "note " * (i % 5))
                 for i in range(first, min(first + 10_000, rows + 1))])


def raw_child(args: dict[str, Any]) -> None:
    """The raw side, run in a subprocess: the same chunks meepo reads, counted."""
    import pymysql

    conn = pymysql.connect(**args["connect"], database=DATABASE, autocommit=True,
                           charset="utf8mb4")
    began, rows, last = time.perf_counter(), 0, None
    with conn.cursor() as cur:
        while True:
            if last is None:
                cur.execute(f"SELECT * FROM {args['table']} ORDER BY id LIMIT {args['chunk']}")
            else:
                cur.execute(f"SELECT * FROM {args['table']} WHERE id > %s ORDER BY id "
                            f"LIMIT {args['chunk']}", (last,))
            chunk = cur.fetchall()
            if not chunk:
                break
            rows += len(chunk)
            last = chunk[-1][0]
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - began}))


def run_child(argv: list[str], cwd: Path | None = None) -> tuple[float, int, str, str]:
    """Wall seconds, peak RSS (KiB, from the child's own rusage), stdout and stderr."""
    began = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if status != 0:
        raise SystemExit(f"{argv[:4]} failed:\n{stderr[-3000:]}")
    return seconds, int(usage.ru_maxrss), stdout, stderr


def meepo_snapshot(server: MariaDBServer, table: str, chunk: int, workdir: Path, rows: int
                   ) -> tuple[float, int]:
    """One ``initial_only`` snapshot of ``table`` into null: seconds and peak RSS (KiB);
    checked to have copied all ``rows``."""
    write_config(workdir, {"snap": {
        "source": {"type": "mysql", "dsn": server.dsn, "tables": [f"{DATABASE}.{table}"]},
        "sinks": [{"type": "null"}], "snapshot": "initial_only", "snapshot_chunk_size": chunk,
        "checkpoint": "none", "status_interval": 0,
    }})
    seconds, peak, _, stderr = run_child(meepo_command("run", "snap"), workdir)
    assert "initial snapshot done" in stderr, stderr[-2000:]
    copied = re.search(r": done, (\d+) rows in", stderr)
    assert copied is not None and int(copied.group(1)) == rows, stderr[-2000:]
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss-rows", type=int, default=0)
    parser.add_argument("--raw-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_child:
        raw_child(json.loads(args.raw_child))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with MariaDBServer(work / "mariadb") as server:
            server.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}", database=None)
            fill(server, "t", args.rows)
            connect = {"host": server.host, "port": server.port, "user": server.user,
                       "password": server.password}
            raw_argv = [sys.executable, __file__, "--raw-child",
                        json.dumps({"connect": connect, "table": "t", "chunk": args.chunk})]
            dump = shutil.which("mariadb-dump") or shutil.which("mysqldump")
            dump_argv = [dump or "mariadb-dump", "--single-transaction", "-h", server.host,
                         "-P", str(server.port), "-u", server.user,
                         f"--password={server.password}", DATABASE, "t"]
            best: dict[str, float] = {}
            peaks: list[int] = []
            for round_ in range(args.repeat):
                raw_seconds, _, stdout, _ = run_child(raw_argv)
                assert json.loads(stdout)["rows"] == args.rows
                meepo_seconds, peak = meepo_snapshot(server, "t", args.chunk, work, args.rows)
                peaks.append(peak)
                dump_seconds = run_child(dump_argv)[0] if dump else 0
                for name, seconds in (("raw", raw_seconds), ("meepo", meepo_seconds),
                                      ("mariadb-dump", dump_seconds)):
                    if seconds:
                        best[name] = min(best.get(name, seconds), seconds)
                print(f"round {round_ + 1}: raw {args.rows / raw_seconds:,.0f} rows/s, meepo "
                      f"{args.rows / meepo_seconds:,.0f} rows/s, mariadb-dump "
                      f"{args.rows / dump_seconds if dump_seconds else 0:,.0f} rows/s",
                      flush=True)
            rate = {name: args.rows / seconds for name, seconds in best.items()}
            result: dict[str, Any] = {
                "rows": args.rows, "chunk": args.chunk, "rounds": args.repeat,
                "rows_per_second": rate,
                "meepo_over_raw": rate["meepo"] / rate["raw"],
                "meepo_over_mariadb_dump": rate["meepo"] / rate["mariadb-dump"]
                if rate.get("mariadb-dump") else None,
                "meepo_peak_rss_mib": max(peaks) / 1024,
            }
            if args.rss_rows:
                fill(server, "big", args.rss_rows)
                seconds, peak = meepo_snapshot(server, "big", args.chunk, work, args.rss_rows)
                result["big"] = {"rows": args.rss_rows, "peak_rss_mib": peak / 1024,
                                 "rows_per_second": args.rss_rows / seconds}
    print(json.dumps(result, indent=2))
    print(f"meepo/raw keyset scan: {result['meepo_over_raw']:.2f} (target >= 0.7)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
