"""Exactly-once against at-least-once, side by side: the same pipeline and workload into the
``sql`` sink (PostgreSQL) and the ``kafka`` sink (noida-db's Kafka protocol), once with the
checkpoint file owning the position and once with ``exactly_once = true``.

    python bench/bench_exactly_once.py [--events N] [--kafka-events N] [--rounds 5]

Workload: a ``jsonl`` log of N row events (N/2 inserts, then N/2 updates of the same rows,
in transactions of 5 events; Kafka takes a longer log, it is faster), replayed by ``meepo
run --once`` in a fresh process per run (each run a new pipeline name, so the exactly-once
run starts without a stored position). The two modes run back to back, which one first
alternating from round to round; a case's ratio is the median of its rounds' ratios (the
machine is shared: pairs run back to back are what compares). The rate is events over the
run's own time (``RunStats.seconds``: connecting, applying, checkpointing; not interpreter
start-up). Two batch sizes: 1000 (the default: a sink that falls behind gets full batches)
and 50 (a latency-minded pipeline, where the per-batch position write weighs most). The sql
target table is emptied between runs (not timed). Targets: exactly-once keeps at least 80 %
of the at-least-once rate into sql, 70 % into Kafka.

Results go to ``bench/results/exactly_once.json``; a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from _env import code_fingerprint, machine
from confluent_kafka.admin import AdminClient, NewTopic
from meepo_testkit.servers import KafkaServer, PostgresServer

from meepo_core import RowEvent, event_to_json
from meepo_core.testing import write_config

RESULTS = Path(__file__).resolve().parent / "results" / "exactly_once.json"
TARGETS = {"sql": 0.8, "kafka": 0.7}
BATCH_SIZES = (1000, 50)


def write_log(path: Path, events: int) -> None:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    rows = events // 2
    with path.open("w", encoding="utf-8") as handle:
        for index in range(events):
            pk = index % rows + 1
            action = "write" if index < rows else "update"
            row = {"id": pk, "name": f"item {pk}", "qty": index}
            event = RowEvent("shop", "items", action, pk, None if action == "write" else row,
                             row, committed_at=stamp, txid=f"t{index // 5}", sequence=index,
                             pk_columns=("id",))
            handle.write(event_to_json(event) + "\n")


#: ``meepo run NAME --once`` through the embedding API, printing the run's exact figures.
RUN_ONCE = ("import sys; from meepo_core import Runner, load_pipeline; "
            "s = Runner(load_pipeline(sys.argv[1])).run(once=True); "
            "print(s.events, s.batches, repr(s.seconds))")


def run(workdir: Path, name: str, env: dict[str, str]) -> tuple[int, int, float]:
    """A fresh process runs pipeline ``name`` once: events, batches and ``RunStats.seconds``."""
    result = subprocess.run([sys.executable, "-c", RUN_ONCE, name], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    events, batches, seconds = result.stdout.split()
    return int(events), int(batches), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--kafka-events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    fingerprint = code_fingerprint()
    from importlib import metadata

    used = {"sqlalchemy", "kafka"}
    others = sorted({ep.name for ep in metadata.entry_points(group="meepo")} - used)
    env = {**os.environ, "MEEPO_DISABLE_PLUGINS": ",".join(others)}
    began = time.monotonic()
    measured: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="meepo-bench-eo-") as tmp:
        base = Path(tmp)
        logs = {"sql": (base / "sql.jsonl", args.events),
                "kafka": (base / "kafka.jsonl", args.kafka_events)}
        for path, events in logs.values():
            write_log(path, events)
        with PostgresServer(base / "pg") as pg, KafkaServer(base / "kafka") as kafka:
            pg_url = pg.url
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute("CREATE TABLE items (id INT PRIMARY KEY, name TEXT, qty INT)")
            admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
            admin.create_topics([NewTopic("bench.items", 4, 1)])["bench.items"].result(30)
            counter = iter(range(1_000_000))
            for round_ in range(args.rounds):
                for sink in ("sql", "kafka"):
                    for batch in BATCH_SIZES:
                        modes = ("at-least-once", "exactly-once")
                        for mode in modes if round_ % 2 == 0 else modes[::-1]:
                            name = f"{sink}-{batch}-{mode}-{next(counter)}"
                            options: dict[str, Any] = (
                                {"type": "sql", "url": pg_url} if sink == "sql" else
                                {"type": "kafka", "bootstrap_servers": kafka.bootstrap,
                                 "topic": "bench.items"})
                            if mode == "exactly-once":
                                options["exactly_once"] = True
                            write_config(base, {name: {
                                "source": {"type": "jsonl", "path": str(logs[sink][0])},
                                "sinks": [options], "batch_size": batch,
                                "status_interval": 0,
                            }})
                            with psycopg.connect(pg_url, autocommit=True) as conn:
                                conn.execute("TRUNCATE items")
                            events, batches, seconds = run(base, name, env)
                            assert events == logs[sink][1], (events, logs[sink][1])
                            key = f"{sink} batch_size={batch}"
                            measured.setdefault(key, {}).setdefault(mode, []).append(
                                events / seconds)
                            print(f"round {round_ + 1} {key} {mode}: {events / seconds:,.0f} "
                                  f"events/s ({batches} batches, {seconds:.2f}s)", flush=True)
    if code_fingerprint() != fingerprint:
        raise SystemExit("the code changed while the benchmark ran; run it again")
    table = []
    for key, modes in measured.items():
        sink = key.split()[0]
        ratios = [eo / alo for alo, eo in zip(modes["at-least-once"], modes["exactly-once"],
                                              strict=True)]
        ratio = statistics.median(ratios)
        table.append({"case": key, "at_least_once_eps": max(modes["at-least-once"]),
                      "exactly_once_eps": max(modes["exactly-once"]), "ratio": ratio,
                      "per_round_ratios": ratios, "target": TARGETS[sink],
                      "meets_target": ratio >= TARGETS[sink]})
    report = {"machine": machine(), "events": {"sql": args.events, "kafka": args.kafka_events},
              "rounds": args.rounds,
              "seconds": round(time.monotonic() - began, 1), "results": table}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print("\n| Case | at-least-once ev/s (best) | exactly-once ev/s (best) | ratio (median) | "
          "per round | target |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for row in table:
        print(f"| {row['case']} | {row['at_least_once_eps']:,.0f} | "
              f"{row['exactly_once_eps']:,.0f} | **{row['ratio']:.2f}** | "
              f"{', '.join(f'{r:.2f}' for r in row['per_round_ratios'])} | "
              f">= {row['target']:.2f} |")
    print(f"\nresults: {RESULTS}")


if __name__ == "__main__":
    main()
