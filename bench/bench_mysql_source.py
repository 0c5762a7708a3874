"""Benchmark of the ``mysql`` source alone: meepo against raw python-mysql-replication
decoding and against MariaDB's C decoder, on the workloads of the end-to-end benchmark.

For each workload (``narrow``/``wide`` rows x ``small``/``huge`` transactions, see
``_workloads.py``) it prepares the binlog range, then, side by side and interleaved over
``--repeat`` rounds (best kept):

* ``raw``: python-mysql-replication's ``BinLogStreamReader`` decoding every row
  (``_raw_decode.py``, a fresh process);
* ``mariadb-binlog``: ``mariadb-binlog --read-from-remote-server -v
  --base64-output=decode-rows`` over the range (the C limit);
* ``meepo -> SINK``: ``meepo run bench --once`` from the mysql source into each of
  ``--sinks`` (``null`` by default; ``redis`` starts a Redis server too).

It prints rows/s (streaming phase), the ratio to raw decoding (wall and CPU), meepo's
ratio to mariadb-binlog and peak RSS. ``--profile`` records one extra ``meepo -> null``
run per workload with py-spy and prints where its samples go. ``--big-update M`` also
streams one M-row UPDATE (peak RSS). Only MariaDB (and Redis) are started: this is the
quick loop for decoder work; ``nox -s bench`` (``bench_e2e.py``) runs everything.

    python bench/bench_mysql_source.py --quick
    python bench/bench_mysql_source.py --workloads narrow/small,wide/huge --repeat 3
    python bench/bench_mysql_source.py --sinks null,redis --profile
    python bench/bench_mysql_source.py --big-update 1000000 --workloads none
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _runs
import _workloads
from _env import DATABASE, Servers
from _workloads import SHAPES, Prepared, Workload
from meepo_testkit.servers import MariaDBServer, RedisServer

#: py-spy sample buckets: label -> regular expression on a frame (inclusive time).
PROFILE_BUCKETS = {
    "row decoding (generated code, conversions)": r"<meepo rows |values\.py|charsets\.py",
    "value conversions alone": r"values\.py|<meepo DECIMAL",
    "RowEvent building": r"builder\.py",
    "transactions, batches": r"transactions\.py|batching\.py",
    "reading packets": r"read_packet",
    "connecting, preflight, startup": r"connect|preflight|_problems|load_cascades|collations",
    "runner thread (queue, metrics, sink)": r"Runner\._loop",
    "python-mysql-replication": r"pymysqlreplication",
}


class SourceServers(Servers):
    """MariaDB (and Redis when a redis sink is measured); no PostgreSQL, no ES."""

    def pg_execute(self, sql: str) -> list[tuple[Any, ...]]:
        return []


@contextlib.contextmanager
def servers(with_redis: bool) -> Iterator[SourceServers]:
    with tempfile.TemporaryDirectory(prefix="meepo-bench-source-") as tmp:
        base = Path(tmp)
        with contextlib.ExitStack() as stack:
            mariadb = stack.enter_context(MariaDBServer(base / "mariadb"))
            redis = stack.enter_context(RedisServer(base / "redis")) if with_redis else None
            workdir = base / "work"
            workdir.mkdir()
            with mariadb.connect(None, autocommit=True) as conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            yield SourceServers(mariadb, redis, None, None, workdir)  # type: ignore[arg-type]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 2000, one round")
    parser.add_argument("--rows", type=int, default=None, help="N, narrow (default 20000)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--workloads", default="narrow/small,narrow/huge,wide/small,wide/huge",
                        help="comma-separated SHAPE/TXN, or 'none'")
    parser.add_argument("--sinks", default="null", help="comma-separated: null, redis")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy one meepo -> null run per workload (pip install py-spy)")
    parser.add_argument("--big-update", type=int, default=0, metavar="M",
                        help="also one M-row UPDATE transaction into null (peak RSS)")
    args = parser.parse_args(argv)
    args.rows = args.rows or (2_000 if args.quick else 20_000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.workloads = [] if args.workloads == "none" else args.workloads.split(",")
    args.sinks = args.sinks.split(",")
    return args


def measure(env: SourceServers, prepared: Prepared, name: str) -> _runs.Measurement:
    if name == "raw":
        return _runs.raw_decode(env, prepared)
    if name == "mariadb-binlog":
        return _runs.c_reference(env, prepared)
    return _runs.meepo_once(env, prepared, name)


def report(prepared: Prepared, best: dict[str, _runs.Measurement]) -> None:
    raw, c = best["raw"], best["mariadb-binlog"]
    print(f"{prepared.workload.name}: {prepared.workload.events:,} row events")
    for name, m in best.items():
        line = f"  {name:15s} {m.rate:>9,.0f} rows/s  run {m.run:6.2f}s  CPU {m.run_cpu:6.2f}s"
        if name not in ("raw", "mariadb-binlog"):
            line += (f"  x raw {m.rate / raw.rate:5.2f} (CPU {m.cpu_rate / raw.cpu_rate:5.2f})"
                     f"  x C {m.rate / c.rate:5.2f}")
        print(f"{line}  RSS {m.rss_mib:4.0f} MiB", flush=True)


def profile(env: SourceServers, prepared: Prepared) -> None:
    """One meepo -> null run under py-spy; prints the share of samples per bucket."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        print("  profile: py-spy is not installed (pip install py-spy)")
        return
    out = env.workdir / "profile.txt"
    prefix = [spy, "record", "-r", "250", "-f", "raw", "-o", str(out), "--", sys.executable]
    _runs.meepo_once(env, prepared, "null", argv_prefix=prefix)
    print("  py-spy, meepo -> null (share of the streaming phase's samples):")
    for label, share in summarize(out.read_text()).items():
        print(f"    {share:5.1f}%  {label}")


def summarize(collapsed: str) -> dict[str, float]:
    """Shares of the streaming phase's (``Runner.*``) busy samples per bucket; samples
    waiting (a thread in ``Condition.wait``, the source in ``select``) are left out."""
    lines = "|".join(map(str, _select_lines()))
    waiting = re.compile(rf"^Condition\.wait |^DumpConnection\._fill \(.*:({lines})\)$")
    total, found = 0, collections.Counter[str]()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("Runner." in frame for frame in frames) or waiting.match(frames[-1]):
            continue
        total += int(count)
        for label, pattern in PROFILE_BUCKETS.items():
            if any(re.search(pattern, frame) for frame in frames):
                found[label] += int(count)
    return {label: 100 * found[label] / max(total, 1) for label in PROFILE_BUCKETS}


def _select_lines() -> list[int]:
    """Lines of meepo_mysql.dump_connection that wait in ``select`` (py-spy shows the frame)."""
    import inspect

    from meepo_mysql import dump_connection

    source, first = inspect.getsourcelines(dump_connection)
    return [first + i for i, text in enumerate(source) if "select.select(" in text]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = ["raw", "mariadb-binlog", *args.sinks]
    with servers("redis" in args.sinks) as env:
        for spec in args.workloads:
            shape, txn = spec.split("/")
            rows = args.rows if shape == "narrow" else max(1, args.rows // 2)
            prepared = _workloads.prepare(env, Workload(SHAPES[shape], txn, rows))
            time.sleep(2)  # let the server's purge of the preparation settle
            runs: dict[str, list[_runs.Measurement]] = {name: [] for name in names}
            for round_ in range(args.repeat):
                for name in names if round_ % 2 == 0 else names[::-1]:
                    runs[name].append(measure(env, prepared, name))
            report(prepared, {name: min(items, key=lambda m: m.run)
                              for name, items in runs.items()})
            if args.profile:
                profile(env, prepared)
        if args.big_update:
            big = _workloads.prepare_big_update(env, args.big_update)
            print(f"one {args.big_update:,}-row UPDATE committed in {big.seconds:.1f}s")
            report(big, {name: measure(env, big, name)
                         for name in ("raw", "mariadb-binlog", "null")})


if __name__ == "__main__":
    main()
