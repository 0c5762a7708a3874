"""What schema change events cost row events: ``meepo run --once`` from the ``mysql`` source
into ``null`` and ``sql`` (PostgreSQL), with this checkout's code and with a baseline
checkout's (the code before schema changes were events), side by side.

Starts its own MariaDB and PostgreSQL in a temp dir, prepares each workload's binlog range
once (``_workloads.py``), then runs both codes over the same range, interleaved over
``--repeat`` rounds (best kept), each a fresh subprocess; the baseline runs with its own
``src`` directories first on ``PYTHONPATH``. Prints rows/s (wall, and per CPU second,
which a busy machine disturbs less) and the ratio checkout / baseline per workload and
sink: within noise of 1.00 means row events pay nothing.

    git archive BASE | tar -x -C /tmp/meepo-base
    python bench/bench_schema_overhead.py --baseline /tmp/meepo-base --rows 10000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import _runs
import _workloads
from _env import DATABASE, Servers
from _workloads import SHAPES, Workload
from meepo_testkit.servers import MariaDBServer, PostgresServer


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    with tempfile.TemporaryDirectory(prefix="meepo-bench-schema-") as tmp:
        base = Path(tmp)
        with MariaDBServer(base / "mariadb") as mariadb, \
                PostgresServer(base / "postgres") as postgres:
            workdir = base / "work"
            workdir.mkdir()
            with mariadb.connect(None, autocommit=True) as conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            yield Servers(mariadb, None, postgres, None, workdir)  # type: ignore[arg-type]


@contextlib.contextmanager
def code_of(checkout: Path | None) -> Iterator[None]:
    """Run children with ``checkout``'s packages first on the path (None: this one's)."""
    saved = os.environ.get("PYTHONPATH")
    if checkout is not None:
        paths = [str(checkout / "src"), *map(str, sorted(checkout.glob("plugins/*/src")))]
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, saved]))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="a checkout of the code to compare with")
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="narrow/small,wide/small")
    parser.add_argument("--sinks", default="null,sql")
    args = parser.parse_args()
    sinks = args.sinks.split(",")
    codes = {"baseline": args.baseline.resolve(), "checkout": None}
    with servers() as env:
        for spec in args.workloads.split(","):
            shape, txn = spec.split("/")
            rows = args.rows if shape == "narrow" else args.rows // 2
            prepared = _workloads.prepare(env, Workload(SHAPES[shape], txn, rows))
            wall: dict[tuple[str, str], float] = {}
            cpu: dict[tuple[str, str], float] = {}
            for _ in range(args.repeat):
                for sink in sinks:
                    for code, checkout in codes.items():
                        with code_of(checkout):
                            m = _runs.meepo_once(env, prepared, sink)
                        key = (code, sink)
                        wall[key] = max(wall.get(key, 0.0), m.rate)
                        cpu[key] = max(cpu.get(key, 0.0), m.cpu_rate)
            print(f"{prepared.workload.name}: {prepared.workload.events:,} row events, "
                  f"best of {args.repeat} (rows/s of the streaming phase: wall, and per CPU "
                  "second of the process)")
            for sink in sinks:
                b, c = ("baseline", sink), ("checkout", sink)
                print(f"  meepo -> {sink:<5} wall {wall[b]:>8,.0f} / {wall[c]:>8,.0f} = "
                      f"{wall[c] / wall[b]:.2f}   cpu {cpu[b]:>8,.0f} / {cpu[c]:>8,.0f} = "
                      f"{cpu[c] / cpu[b]:.2f}")

if __name__ == "__main__":
    main()
