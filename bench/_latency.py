"""Commit-to-sink latency at a fixed offered load.

A writer in this process inserts one row per transaction (autocommit) at ``rate`` rows/s
on a fixed schedule (row i is due at ``t0 + i / rate``; a late writer catches up without
sleeping, so the offered load does not sag when the server is slow), and notes
``time.time()`` right after each COMMIT returns. Meanwhile ``meepo run latency`` (not
``--once``) follows the binlog into ``[sinks..., bench-recorder]``; the recorder notes when
each pk arrives (after the sinks before it applied the batch). Latency is arrival minus
commit, matched by pk; both clocks are this machine's wall clock. The peak RSS of the
following process is measured too.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from _env import Servers
from _runs import NEEDS, BenchError, child_env, reset_sink, sink_config, write_pipeline
from _workloads import prepare_latency_table

from meepo_core.testing import meepo_command

INSERT = ("INSERT INTO latency VALUES (%s, 'name', 1.25, 1, '2024-01-01 10:00:00.123456', 1, "
          "'a note')")


@dataclass
class LatencyResult:
    label: str
    batch_wait: float | None
    offered: float  # rows/s asked for
    achieved: float  # rows/s the writer managed
    rows: int
    arrived: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_kib: int
    cpu_s: float  # user + sys of the meepo process over its whole life
    seconds: float  # how long the writer wrote
    #: p99 (ms) of the rows committed in each second of the run, to see warm-up and stalls
    p99_by_second: list[float]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), round(q * len(values) + 0.5)))
    return values[rank - 1]


def measure(env: Servers, sinks: list[str], *, rate: int, seconds: float,
            batch_wait: float | None) -> LatencyResult:
    table = prepare_latency_table(env)
    for sink in sinks:
        reset_sink(env, sink, table, 0)
    record = env.workdir / "arrivals.txt"
    record.unlink(missing_ok=True)
    start = env.binlog_end()
    configs = [sink_config(env, sink, table) for sink in sinks]
    configs.append({"type": "bench-recorder", "path": str(record)})
    settings = {} if batch_wait is None else {"batch_wait": batch_wait}
    write_pipeline(env, "latency", table, start, configs, **settings)
    keep = set().union(NEEDS["null"], *(NEEDS[s] for s in sinks))
    err_path = env.workdir / "latency.err"
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            meepo_command("run", "latency"),
            cwd=env.workdir, env=child_env(keep), stdout=subprocess.DEVNULL, stderr=err,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for(lambda: "mysql source:" in err_path.read_text(), 60, proc, err_path)
        time.sleep(0.5)  # the reader connects right after that line
        count = int(rate * seconds)
        commits, achieved = _write(env, rate, count)
        wrote = count / achieved
        _wait_for(lambda: _lines(record) >= count, 60, proc, err_path, strict=False)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, _, usage = _wait4(proc, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    arrivals: dict[int, float] = {}
    for line in record.read_text().splitlines():
        pk, at = line.split()
        arrivals.setdefault(int(pk), float(at))
    latencies = sorted(arrivals[pk] - at for pk, at in commits.items() if pk in arrivals)
    first = min(commits.values())
    by_second: dict[int, list[float]] = {}
    for pk, at in commits.items():
        if pk in arrivals:
            by_second.setdefault(int(at - first), []).append(arrivals[pk] - at)
    label = " -> ".join([*sinks, "recorder"]) if sinks else "recorder only"
    return LatencyResult(
        label=label, batch_wait=batch_wait, offered=rate, achieved=achieved, rows=len(commits),
        arrived=len(latencies), p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000, max_ms=latencies[-1] * 1000,
        rss_kib=int(usage.ru_maxrss),  # type: ignore[attr-defined]
        cpu_s=usage.ru_utime + usage.ru_stime,  # type: ignore[attr-defined]
        seconds=wrote,
        p99_by_second=[round(percentile(sorted(v), 0.99) * 1000, 1)
                       for _, v in sorted(by_second.items())],
    )


def _write(env: Servers, rate: int, count: int) -> tuple[dict[int, float], float]:
    commits: dict[int, float] = {}
    with env.mysql() as conn, conn.cursor() as cur:
        began = time.perf_counter()
        for i in range(count):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            cur.execute(INSERT, (i + 1,))
            commits[i + 1] = time.time()
        achieved = count / (time.perf_counter() - began)
    return commits, achieved


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def _wait_for(ready: object, timeout: float, proc: subprocess.Popen[bytes], err: Path,
              strict: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if proc.poll() is not None:
            raise BenchError(f"meepo run latency exited {proc.returncode}:\n"
                             f"{err.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            if strict:
                raise BenchError(f"meepo run latency not ready after {timeout:.0f}s:\n"
                                 f"{err.read_text()[-3000:]}")
            return
        time.sleep(0.05)


def _wait4(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, int, object]:
    import os

    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return pid, status, usage
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.02)
