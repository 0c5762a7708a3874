"""Measured runs: the raw decoder and ``meepo run --once``, each a fresh subprocess.

Every run is one child process, waited for with ``os.wait4`` so that its own CPU time
(user + sys) is exact; peak RSS is the child's own ``VmHWM`` as it reports it (the meepo
and raw children; ``ru_maxrss`` otherwise, which can include the parent's size); wall
time is from spawn to exit and so includes interpreter start-up on both sides. Each
child also reports its streaming phase (``run``: the raw reader's life; ``Runner.run``
for meepo, see ``_meepo_timed.py``), which is what rows/s and the ratios use; start-up
is reported on its own. Sink state is reset before each run and checked after it (not
timed): a run that delivered the wrong number of events, left dead letters, checkpointed
anywhere but the range's end, or left the sink different from the MariaDB table, aborts
the benchmark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from _env import DATABASE, Servers
from _workloads import Prepared

from meepo_core.testing import write_config

BENCH_DIR = Path(__file__).resolve().parent
SINKS = ("null", "redis", "elasticsearch", "sql")
#: Entry-point plugins each pipeline needs; the others are disabled (their import time
#: is not the pipeline's cost).
NEEDS = {
    "null": {"mysql"},
    "redis": {"mysql", "redis"},
    "elasticsearch": {"mysql", "es"},
    "sql": {"mysql", "sqlalchemy"},
}
RAW_SERVER_ID = 4_000_000_001


class BenchError(SystemExit):
    pass


@dataclass
class Child:
    wall: float
    cpu: float
    rss_kib: int
    stdout: str
    stderr: str


@dataclass
class Measurement:
    workload: str
    pipeline: str  # "raw" or a sink type
    rows: int
    wall: float  # process, spawn to exit
    cpu: float  # process, user + sys
    rss_kib: int  # process peak
    run: float  # streaming phase, wall
    run_cpu: float  # streaming phase, CPU of the whole process

    @property
    def rate(self) -> float:
        """Rows per second of the streaming phase."""
        return self.rows / self.run

    @property
    def wall_rate(self) -> float:
        """Rows per second of the whole process, start-up included."""
        return self.rows / self.wall

    @property
    def cpu_rate(self) -> float:
        return self.rows / self.run_cpu

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024


def run_child(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 1800, *, read_stdout: bool = True) -> Child:
    """Run ``argv`` to completion; its wall time, own CPU time and peak RSS (stdout and
    stderr go through files, so a chatty child is not slowed by a pipe). With
    ``read_stdout=False`` its output stays in ``cwd / "child.out"`` (it can be large)."""
    out_path, err_path = cwd / "child.out", cwd / "child.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                raise BenchError(f"{argv[-3:]} still running after {timeout:.0f}s")
            time.sleep(0.01)
        wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text() if read_stdout else ""
    stderr = err_path.read_text()
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv[-3:])} exited {proc.returncode}:\n{stderr[-3000:]}")
    return Child(wall, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss), stdout, stderr)


def raw_decode(env: Servers, prepared: Prepared) -> Measurement:
    m = env.mariadb
    args = {
        "connection": {"host": m.host, "port": m.port, "user": m.user, "password": m.password},
        "server_id": RAW_SERVER_ID, "file": prepared.start[0], "pos": prepared.start[1],
        "schema": DATABASE, "table": prepared.workload.table,
    }
    child = run_child([sys.executable, str(BENCH_DIR / "_raw_decode.py"), json.dumps(args)],
                      env.workdir)
    report = json.loads(child.stdout.strip().splitlines()[-1])
    rows = int(report["rows"])
    if rows != prepared.workload.events:
        raise BenchError(f"raw decode of {prepared.workload.name} saw {rows} rows, the "
                         f"workload wrote {prepared.workload.events}")
    return Measurement(prepared.workload.name, "raw", rows, child.wall, child.cpu,
                       int(report.get("hwm_kib") or child.rss_kib), float(report["run"]),
                       float(report["cpu"]))


def c_reference(env: Servers, prepared: Prepared) -> Measurement:
    """``mariadb-binlog --read-from-remote-server -v --base64-output=decode-rows`` over the
    range: MariaDB's own C decoder, printing every row's values as text (the C limit)."""
    m, (file, pos), (end_file, end_pos) = env.mariadb, prepared.start, prepared.end
    binary = shutil.which("mariadb-binlog") or shutil.which("mysqlbinlog")
    if binary is None:
        raise BenchError("mariadb-binlog is not installed (apt-get install mariadb-client)")
    stop = [f"--stop-position={end_pos}"] if end_file == file else ["--to-last-log"]
    argv = [binary, "--read-from-remote-server", f"--host={m.host}", f"--port={m.port}",
            f"--user={m.user}", f"--password={m.password}", "-v",
            "--base64-output=decode-rows", f"--start-position={pos}", *stop, file]
    child = run_child(argv, env.workdir, read_stdout=False)
    with (env.workdir / "child.out").open("rb") as output:  # line by line: it is big
        rows = sum(1 for line in output
                   if line.startswith((b"### INSERT INTO", b"### UPDATE ", b"### DELETE FROM")))
    if rows != prepared.workload.events:
        raise BenchError(f"mariadb-binlog printed {rows} rows of {prepared.workload.name}, the "
                         f"workload wrote {prepared.workload.events}")
    return Measurement(prepared.workload.name, "mariadb-binlog", rows, child.wall, child.cpu,
                       child.rss_kib, child.wall, child.cpu)


def es_bulk(env: Servers, prepared: Prepared) -> Measurement:
    """The Elasticsearch server's capacity for the workload's operations, without meepo."""
    m, workload = env.mariadb, prepared.workload
    args = {
        "url": env.es.url, "index": f"bench_bulk_{workload.table}", "database": DATABASE,
        "connection": {"host": m.host, "port": m.port, "user": m.user, "password": m.password},
        "table": workload.table, "rows": workload.rows,
    }
    child = run_child([sys.executable, str(BENCH_DIR / "_es_bulk.py"), json.dumps(args)],
                      env.workdir)
    report = json.loads(child.stdout.strip().splitlines()[-1])
    env.es_delete_index(args["index"])
    return Measurement(workload.name, "es-bulk", int(report["rows"]), child.wall, child.cpu,
                       child.rss_kib, float(report["run"]), float(report["cpu"]))


def disabled_plugins(keep: set[str]) -> str:
    return ",".join(sorted({ep.name for ep in entry_points(group="meepo")} - keep))


def sink_config(env: Servers, sink: str, table: str) -> dict[str, Any]:
    qualified = f"{DATABASE}.{table}"
    if sink == "null":
        return {"type": "null"}
    if sink == "redis":
        return {"type": "redis", "url": env.redis.url, "keys": {qualified: [f"{table}:{{id}}"]}}
    if sink == "elasticsearch":
        return {"type": "elasticsearch", "hosts": [env.es.url]}
    if sink == "sql":
        return {"type": "sql", "url": env.postgres.url, "tables": {qualified: table}}
    raise ValueError(sink)


def es_index(table: str) -> str:
    return f"{DATABASE}_{table}"


def reset_sink(env: Servers, sink: str, table: str, rows: int) -> None:
    """Empty the sink's state; for ``redis``, fill the cache keys the run must delete."""
    if sink == "redis":
        client = env.redis_client()
        client.flushall()
        for low in range(1, rows + 1, 10_000):
            pipe = client.pipeline(transaction=False)
            for pk in range(low, min(rows, low + 9_999) + 1):
                pipe.set(f"{table}:{pk}", "cached")
            pipe.execute()
        client.close()
    elif sink == "elasticsearch":
        env.es_delete_index(es_index(table))
    elif sink == "sql":
        env.pg_execute(f"TRUNCATE {table}")


def verify_sink(env: Servers, sink: str, table: str) -> None:
    """The sink now mirrors the table (or, for redis, every touched key is gone)."""
    expected = env.mysql_count(table)
    if sink == "redis":
        left = env.redis_client().dbsize()
        if left:
            raise BenchError(f"redis sink left {left} cache keys of {table} undeleted")
    elif sink == "elasticsearch":
        found = env.es_count(es_index(table))
        if found != expected:
            raise BenchError(f"elasticsearch holds {found} docs of {table}, MariaDB {expected}")
    elif sink == "sql":
        found = int(env.pg_execute(f"SELECT COUNT(*) FROM {table}")[0][0])
        if found != expected:
            raise BenchError(f"PostgreSQL holds {found} rows of {table}, MariaDB {expected}")


def write_pipeline(env: Servers, name: str, table: str, start: tuple[str, int],
                   sinks: list[dict[str, Any]], **settings: Any) -> tuple[Path, Path]:
    """Write the config; return (checkpoint, dead-letter) paths, both removed."""
    meepo_dir = env.workdir / ".meepo"
    checkpoint, dead = meepo_dir / f"{name}.json", meepo_dir / f"{name}.dead.jsonl"
    checkpoint.unlink(missing_ok=True)
    dead.unlink(missing_ok=True)
    source = {"type": "mysql", "dsn": env.mysql_dsn, "tables": [f"{DATABASE}.{table}"],
              "start": f"{start[0]}:{start[1]}"}
    pipeline = {"source": source, "sinks": sinks, "checkpoint": f"file:{checkpoint}",
                "dead_letter": f"file:{dead}", "status_interval": 0, **settings}
    extra = {"plugins": ["_recorder"]} if any(s["type"] == "bench-recorder" for s in sinks) \
        else {}
    write_config(env.workdir, {name: pipeline}, **extra)
    return checkpoint, dead


def child_env(keep: set[str]) -> dict[str, str]:
    env = dict(os.environ)
    env["MEEPO_DISABLE_PLUGINS"] = disabled_plugins(keep)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
    return env


def meepo_once(env: Servers, prepared: Prepared, sink: str, *, verify: bool = True,
               argv_prefix: list[str] | None = None) -> Measurement:
    """``meepo run bench --once`` (as ``_meepo_timed.py`` runs it) over the prepared range
    into ``sink``."""
    workload = prepared.workload
    reset_sink(env, sink, workload.table, workload.rows)
    checkpoint, dead = write_pipeline(env, "bench", workload.table, prepared.start,
                                      [sink_config(env, sink, workload.table)])
    argv = (argv_prefix or [sys.executable]) + [str(BENCH_DIR / "_meepo_timed.py"), "bench"]
    child = run_child(argv, env.workdir, child_env(NEEDS[sink]))
    run, run_cpu = phase(child.stderr)
    rss_kib = peak_rss(child)
    match = re.search(r"bench: (\d+) events in", child.stderr)
    if match is None:
        raise BenchError(f"no summary line from meepo:\n{child.stderr[-3000:]}")
    events = int(match.group(1))
    if events != workload.events:
        raise BenchError(f"meepo -> {sink} delivered {events} events of {workload.name}, the "
                         f"workload wrote {workload.events}")
    saved = json.loads(checkpoint.read_text())["position"]
    if (saved.get("file"), saved.get("pos")) != prepared.end:
        raise BenchError(f"meepo -> {sink} checkpointed {saved}, expected {prepared.end}")
    if dead.exists() and dead.read_text().strip():
        raise BenchError(f"meepo -> {sink} dead-lettered events:\n{dead.read_text()[:2000]}")
    if verify:
        verify_sink(env, sink, workload.table)
    return Measurement(workload.name, sink, events, child.wall, child.cpu, rss_kib, run, run_cpu)


def peak_rss(child: Child) -> int:
    """The child's own peak RSS as it reported it (``ru_maxrss`` can include its parent's
    size, see ``_meepo_timed.peak_rss_kib``)."""
    match = re.search(r"hwm_kib=(\d+)", child.stderr)
    return int(match.group(1)) if match and int(match.group(1)) else child.rss_kib


def phase(stderr: str) -> tuple[float, float]:
    match = re.search(r"bench-timing run=([\d.]+) cpu=([\d.]+)", stderr)
    if match is None:
        raise BenchError(f"no timing line from meepo:\n{stderr[-3000:]}")
    return float(match.group(1)), float(match.group(2))


def meepo_idle(env: Servers, table: str) -> Measurement:
    """``meepo run --once`` over an empty range: start-up and shut-down cost, base RSS."""
    end = env.binlog_end()
    write_pipeline(env, "bench", table, end, [{"type": "null"}])
    child = run_child([sys.executable, str(BENCH_DIR / "_meepo_timed.py"), "bench"],
                      env.workdir, child_env(NEEDS["null"]))
    run, run_cpu = phase(child.stderr)
    return Measurement("(empty range)", "null", 0, child.wall, child.cpu, peak_rss(child),
                       run, run_cpu)
