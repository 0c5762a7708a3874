"""Benchmark: the ``postgres`` source against a raw psycopg2 consumer of the same stream.

Starts its own PostgreSQL (``meepo_testkit.servers.PostgresServer``), creates a pgoutput
slot and a publication, then writes N inserts, N updates and N deletes (1,000 rows per
statement) to a 7-column table of mixed types. Every measured reader gets its own copy of
that slot (``pg_copy_logical_replication_slot``), so all read exactly the same WAL:

* raw: a psycopg2 ``LogicalReplicationConnection`` in this process, reading the pgoutput
  messages (``read_message``) and confirming each commit, without decoding the rows: the
  fastest a Python consumer on this driver can go;
* meepo: ``meepo run bench --once`` in a subprocess, ``postgres`` source -> ``null`` sink,
  wall clock including interpreter start-up; the start-up (the same command with nothing to
  read) is measured too, and the ratio is given with and without it;
* pg_recvlogical: the C client shipped with the server, writing the stream to /dev/null.

Each is run ``--repeat`` times, each round starting with the next reader (the first to read
the WAL in a round pays for it), and the best run of each is compared (the machine is shared
and noisy). ``--profile`` adds a py-spy profile of one meepo run (not
timed; needs ``pip install py-spy``), summarised as the functions with the most samples.
Results go to ``bench/results/postgres.json`` and a printed table.

Usage::

    python bench/bench_postgres.py --rows 50000 --repeat 3 --profile
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras
from meepo_postgres import pgoutput, values
from meepo_postgres.config import parse_settings
from meepo_postgres.connections import SESSION_SETTINGS
from meepo_postgres.server import ControlConnection
from meepo_testkit.servers import PostgresServer

from meepo_core import Options
from meepo_core.testing import meepo_command, write_config

RESULTS = Path(__file__).parent / "results" / "postgres.json"
TABLE = """CREATE TABLE t (
  id INT PRIMARY KEY, name VARCHAR(64), price NUMERIC(10,2), qty INT,
  created TIMESTAMP, active BOOLEAN, note TEXT)"""
CHUNK = 1000
SLOT, PUBLICATION = "bench_origin", "bench_pub"
OPTIONS = " ".join(f"-c {k}={v}" for k, v in SESSION_SETTINGS.items())


def prepare(server: PostgresServer, rows: int) -> tuple[int, int]:
    """The workload's WAL behind slot ``bench_origin``; returns (row events, WAL end)."""
    with server.connect(autocommit=True) as conn:
        conn.execute(TABLE)
        conn.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE t")
        conn.execute(f"SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')")
        for start in range(1, rows + 1, CHUNK):
            end = min(start + CHUNK - 1, rows)
            conn.execute(
                "INSERT INTO t SELECT g, 'name ' || g, g * 1.25, g %% 100, "
                "timestamp '2026-01-01' + g * interval '1 second', g %% 2 = 0, "
                "'a note for row ' || g FROM generate_series(%s::int, %s::int) g", (start, end))
        for start in range(1, rows + 1, CHUNK):
            conn.execute("UPDATE t SET qty = qty + 1, note = 'updated' "
                         "WHERE id BETWEEN %s::int AND %s::int", (start, start + CHUNK - 1))
        for start in range(1, rows + 1, CHUNK):
            conn.execute("DELETE FROM t WHERE id BETWEEN %s::int AND %s::int",
                         (start, start + CHUNK - 1))
    settings = parse_settings(Options({"dsn": server.url}, "source", Path.cwd()))
    control = ControlConnection(settings)
    try:
        return rows * 3, control.readable_end()
    finally:
        control.close()


def copy_slot(server: PostgresServer, name: str) -> None:
    with server.connect(autocommit=True) as conn:
        conn.execute("SELECT pg_copy_logical_replication_slot(%s, %s)", (SLOT, name))


def drop_slot(server: PostgresServer, name: str) -> None:
    """Drop a used slot copy (the server has a few slots only), once its reader let go
    (waits up to 10 s for that)."""
    with server.connect(autocommit=True) as conn:
        for _ in range(100):
            row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                               (name,)).fetchone()
            if row is None:
                return
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                return
            time.sleep(0.1)


def run_raw(
    server: PostgresServer, slot: str, end: int, *, decode: bool = False
) -> tuple[float, int]:
    """Read the stream until ``end``, counting row messages; with ``decode`` also turn
    each row into a dict of Python values (pgoutput's tuple reader and the built-in
    converters by type OID, as meepo does); (seconds, rows)."""
    began = time.perf_counter()
    conn = psycopg2.connect(server.url, options=OPTIONS,
                            connection_factory=psycopg2.extras.LogicalReplicationConnection)
    cur = conn.cursor()
    cur.start_replication(slot_name=slot, decode=False, options={
        "proto_version": "1", "publication_names": PUBLICATION})
    rows = 0
    read = cur.read_message
    relations: dict[int, tuple[tuple[str, ...], list[Any]]] = {}
    while True:
        message = read()
        if message is None:
            if cur.wal_end >= end:
                break
            # Ask for a reply (wal_end) only when the stream stays silent: asking on every
            # empty read slows the sender down.
            if not select.select([conn], [], [], 0.2)[0]:
                cur.send_feedback(reply=True)
            continue
        data = message.payload
        kind = data[0]
        if kind in (73, 85, 68):  # I, U, D
            rows += 1
            if decode:
                names, converters = relations[pgoutput.relation_oid(data)]
                pos = 6
                if kind == 85 and data[5] in (75, 79):  # old row first
                    pos = pgoutput.read_tuple(data, 6, converters)[1] + 1
                dict(zip(names, pgoutput.read_tuple(data, pos, converters)[0], strict=True))
        elif kind == 82 and decode:  # R
            relation = pgoutput.parse_relation(data)
            relations[relation.oid] = (
                tuple(c.name for c in relation.columns),
                [values.SCALARS.get(c.type_oid) for c in relation.columns],
            )
        elif kind == 67:  # C: confirm, as a consumer does
            cur.send_feedback(flush_lsn=message.data_start)
    seconds = time.perf_counter() - began
    conn.close()
    return seconds, rows


def run_meepo(workdir: Path, env: dict[str, str], profile: Path | None = None) -> tuple[float, int]:
    """``meepo run bench --once``; (wall seconds, events delivered)."""
    command = meepo_command("run", "bench", "--once")
    if profile is not None:
        command = ["py-spy", "record", "--format", "raw", "--rate", "250", "-o", str(profile),
                   "--", *command]
    began = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                            check=False)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"meepo failed: {result.stderr[-2000:]}")
    match = re.search(r"(\d+) events", result.stderr)
    return seconds, int(match[1]) if match else -1


def run_recvlogical(server: PostgresServer, slot: str, end: int) -> float:
    began = time.perf_counter()
    subprocess.run(
        [str(server.bindir / "pg_recvlogical"), "-h", server.host, "-p", str(server.port),
         "-U", "postgres", "-d", server.database, "-S", slot, "--start", "--no-loop",
         "-E", f"{end >> 32:X}/{end & 0xFFFFFFFF:X}", "-f", "/dev/null",
         "-o", "proto_version=1", "-o", f"publication_names={PUBLICATION}"],
        check=True, capture_output=True,
    )
    return time.perf_counter() - began


def meepo_config(workdir: Path, server: PostgresServer, slot: str) -> None:
    source = {"type": "postgres", "dsn": server.url, "tables": ["public.t"], "slot": slot,
              "publication": PUBLICATION, "start": "slot"}
    write_config(workdir, {"bench": {"source": source, "sinks": [{"type": "null"}],
                                     "checkpoint": "none", "status_interval": 0}})


def summarize_profile(path: Path, top: int = 12) -> list[tuple[str, float]]:
    """Share of samples per leaf function (where the time is spent), from py-spy raw."""
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frame = stack.split(";")[-1]
        leaves[re.sub(r" \((.*/)?", " (", frame)] += int(count)
        total += int(count)
    return [(name, round(100 * n / total, 1)) for name, n in leaves.most_common(top)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    plugins = {"meepo-postgres", "postgres", "meepo_postgres"}
    from importlib import metadata

    others = sorted({ep.name for ep in metadata.entry_points(group="meepo")} - plugins)
    env = {**os.environ, "MEEPO_DISABLE_PLUGINS": ",".join(others)}
    best: dict[str, float] = {}
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="meepo-bench-pg-") as tmp:
        workdir = Path(tmp)
        with PostgresServer(workdir / "pg") as server:
            events, end = prepare(server, args.rows)
            print(f"{events} row events in the slot; WAL end {end >> 32:X}/{end & 0xFFFFFFFF:X}")
            copy_slot(server, "bench_empty")  # start-up cost: a slot with nothing to read
            with server.connect(autocommit=True) as conn:
                conn.execute("SELECT pg_replication_slot_advance('bench_empty', %s::pg_lsn)",
                             (f"{end >> 32:X}/{end & 0xFFFFFFFF:X}",))
            def raw() -> None:
                copy_slot(server, "bench_raw")
                timings["raw"], rows = run_raw(server, "bench_raw", end)
                assert rows == events, (rows, events)
                drop_slot(server, "bench_raw")

            def raw_decode() -> None:
                copy_slot(server, "bench_raw")
                timings["raw_decode"], rows = run_raw(server, "bench_raw", end, decode=True)
                assert rows == events, (rows, events)
                drop_slot(server, "bench_raw")

            def meepo() -> None:
                copy_slot(server, "bench_meepo")
                meepo_config(workdir, server, "bench_meepo")
                timings["meepo"], delivered = run_meepo(workdir, env)
                assert delivered == events, (delivered, events)
                drop_slot(server, "bench_meepo")
                meepo_config(workdir, server, "bench_empty")
                timings["startup"], _ = run_meepo(workdir, env)

            def recvlogical() -> None:
                copy_slot(server, "bench_c")
                timings["pg_recvlogical"] = run_recvlogical(server, "bench_c", end)
                drop_slot(server, "bench_c")

            readers = [raw, raw_decode, meepo, recvlogical]
            for number in range(1, args.repeat + 1):
                timings: dict[str, float] = {}
                # Each round starts with another reader: the first to read the WAL after
                # the slot copies pays for it (seen: 2x on the first reader of a round).
                shift = (number - 1) % len(readers)
                for read in readers[shift:] + readers[:shift]:
                    read()
                rounds.append(timings)
                print(f"round {number}: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
                for key, value in timings.items():
                    best[key] = min(best.get(key, value), value)
            profile: list[tuple[str, float]] = []
            if args.profile and shutil.which("py-spy"):
                copy_slot(server, "bench_profile")
                meepo_config(workdir, server, "bench_profile")
                run_meepo(workdir, env, workdir / "profile.txt")
                profile = summarize_profile(workdir / "profile.txt")
    rates = {key: events / best[key]
             for key in ("raw", "raw_decode", "meepo", "pg_recvlogical")}
    rates["meepo_after_startup"] = events / max(best["meepo"] - best["startup"], 1e-9)
    report = {
        "rows": events, "repeat": args.repeat, "best_seconds": best, "rows_per_second": rates,
        "ratio_meepo_vs_raw": rates["meepo"] / rates["raw"],
        "ratio_meepo_after_startup_vs_raw": rates["meepo_after_startup"] / rates["raw"],
        "ratio_meepo_vs_raw_decode": rates["meepo"] / rates["raw_decode"],
        "ratio_meepo_after_startup_vs_raw_decode": (
            rates["meepo_after_startup"] / rates["raw_decode"]),
        "rounds": rounds, "profile_top_self": profile,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "psycopg2": psycopg2.__version__.split()[0]},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'reader':<28}{'best s':>9}{'rows/s':>12}")
    for key, label in (("pg_recvlogical", "pg_recvlogical (C)"), ("raw", "raw psycopg2"),
                       ("raw_decode", "raw psycopg2 + decode"),
                       ("meepo", "meepo run --once -> null"),
                       ("meepo_after_startup", "  same, less start-up")):
        seconds = best.get(key, best["meepo"] - best["startup"])
        print(f"{label:<28}{seconds:>9.2f}{rates[key]:>12,.0f}")
    print(f"start-up of meepo run --once: {best['startup']:.2f}s")
    print(f"ratio meepo/raw: {report['ratio_meepo_vs_raw']:.3f} "
          f"({report['ratio_meepo_after_startup_vs_raw']:.3f} less start-up)")
    print(f"ratio meepo/raw+decode: {report['ratio_meepo_vs_raw_decode']:.3f} "
          f"({report['ratio_meepo_after_startup_vs_raw_decode']:.3f} less start-up)")
    if profile:
        print("\npy-spy, share of samples by innermost function:")
        for name, share in profile:
            print(f"  {share:5.1f}%  {name}")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
