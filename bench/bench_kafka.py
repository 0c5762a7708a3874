"""Kafka benchmark: the ``kafka`` sink against raw confluent-kafka, and MariaDB -> Kafka ->
worker end to end, on private servers (noida-db's Kafka protocol and MariaDB).

    python bench/bench_kafka.py [--rows N] [--rounds 3] [--no-profile]

1. **Sink vs raw produce.** The same messages (keys, values and headers made by the sink's
   own encoder from mysql-shaped events: the narrow row of ``bench/_workloads.py``, 2.5
   events per row) go to the same 4-partition topic on the same server, alternately:
   *raw* is confluent-kafka's ``produce`` of the pre-encoded messages with the sink's
   librdkafka settings (idempotent, acks=all) and one ``flush`` at the end; *sink* is
   ``KafkaSink.apply`` on batches of 1000 events, which encodes them, produces them and
   waits for every delivery report of each batch. Best of ``--rounds``; the target is a
   ratio of at least 0.8. The CPU time of the producing thread per message is recorded
   too: it tells what each side costs itself, apart from waiting on the server.
2. **End to end.** ``meepo run publish --once`` (mysql source -> kafka sink) while a
   ``meepo run worker`` (kafka source -> null sink) runs; the rate is the events over the
   time from the publisher's start until the worker's checkpoint covers every message.
   Each stage alone is timed too.
3. **Profile.** py-spy samples a child process that runs the sink half of step 1; the
   summary lists the functions with the most samples on top of the stack (own time).

Results go to ``bench/results/kafka.json``; a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

from _env import code_fingerprint, machine
from _workloads import SHAPES, SMALL_TXN, _changes
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from meepo_kafka.config import LIBRDKAFKA_LOG
from meepo_kafka.kafka_sink import KafkaSink, split_key_change
from meepo_testkit.servers import KafkaServer, MariaDBServer

from meepo_core import Batch, Options, RowEvent, event_to_json
from meepo_core.testing import make_context, meepo_command, write_config

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "kafka.json"
PARTITIONS = 4
BATCH = 1000
DATABASE = "meepo_bench"


# -- 1. the sink against raw produce ---------------------------------------------------


def mysql_events(rows: int) -> list[RowEvent]:
    """What the mysql source emits for the narrow workload: ``rows`` inserts, updates and
    ``rows // 2`` deletes in transactions of ``SMALL_TXN`` rows (one rows event each, so
    the rows of a transaction share their position, timestamp and GTID)."""
    created = datetime(2024, 1, 1, 10, 0, 0, 123456)

    def row(i: int, bump: int = 0) -> dict[str, Any]:
        name = f"name {i}" + "!" * bump
        return {"id": i, "name": name, "price": Decimal(f"{i % 10000}.25"),
                "qty": i % 100 + bump, "created": created, "active": i % 2,
                "note": f"a note about row {i}"}

    events: list[RowEvent] = []
    offset = 4
    sequence_of = (1 << 32)

    def transaction(action: str, ids: range) -> None:
        nonlocal offset
        where = {"file": "binlog.000001", "pos": offset}
        stamp = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=len(events))
        gtid = f"0-1-{len(events) + 1}"
        for n, i in enumerate(ids):
            before = None if action == "write" else row(i)
            after = None if action == "delete" else row(i, 1 if action == "update" else 0)
            events.append(RowEvent("shop", "narrow", action, i, before, after,  # type: ignore[arg-type]
                                   where, stamp, gtid, sequence_of | (offset + n), ("id",)))
        offset += 200 * len(ids)

    for action, count in (("write", rows), ("update", rows), ("delete", rows // 2)):
        for low in range(1, count + 1, SMALL_TXN):
            transaction(action, range(low, min(count, low + SMALL_TXN - 1) + 1))
    return events


def sink_for(bootstrap: str, topic: str, base: Path) -> KafkaSink:
    sink = KafkaSink.from_options(Options(
        {"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic}, "sinks[0]", base))
    sink.open(make_context(base))
    return sink


def encoded(sink: KafkaSink, events: list[RowEvent]) -> list[tuple[Any, ...]]:
    """The messages the sink makes of ``events``: (topic, value, key, headers)."""
    assert sink.format is not None
    out = []
    for event in events:
        for part in split_key_change(event):
            topic = sink.router.topic(part.schema, part.table)
            out.append((topic, sink.format.value(part), sink.format.key(part),
                        sink._headers(part)))
    return out


def raw_producer(bootstrap: str) -> Producer:
    """A producer with the sink's librdkafka settings, connected (as the sink is when
    ``apply`` is first called)."""
    config = {k: v for k, v in KafkaSink.from_options(Options(
        {"type": "kafka", "bootstrap_servers": bootstrap}, "s", Path("."))).producer_config()
        .items() if k not in ("on_delivery", "error_cb", "logger")}
    producer = Producer(config)
    producer.list_topics(timeout=10)
    return producer


#: A run's wall seconds and the CPU seconds of the thread that made and produced messages.
Timing = tuple[float, float]


def produce_all(bootstrap: str, messages: Iterable[tuple[Any, ...]], what: str) -> Timing:
    """Time to produce ``messages`` ((topic, value, key, headers), made as they are
    consumed) with confluent-kafka alone, until every one is acknowledged (one flush)."""
    producer = raw_producer(bootstrap)
    produce, poll = producer.produce, producer.poll
    began, cpu = time.perf_counter(), time.thread_time()
    for topic, value, key, headers in messages:
        while True:
            try:
                produce(topic, value, key, headers=headers)
                break
            except BufferError:
                poll(0.05)
    left = producer.flush(60)
    timing = time.perf_counter() - began, time.thread_time() - cpu
    if left:
        raise SystemExit(f"{what}: {left} messages unacknowledged")
    return timing


def run_raw(bootstrap: str, messages: list[tuple[Any, ...]]) -> Timing:
    """The pre-encoded messages, as they are."""
    return produce_all(bootstrap, messages, "raw produce")


def run_standard_encoder(bootstrap: str, topic: str, events: list[RowEvent],
                         headers: list[Any]) -> Timing:
    """A hand-written producer: each event encoded with meepo-core's ``event_to_json``
    (the same document the sink writes) just before it is produced."""
    made = ((topic, event_to_json(event).encode(),
             json.dumps({"id": event.pk}, separators=(",", ":")).encode(), header)
            for event, header in zip(events, headers, strict=True))
    return produce_all(bootstrap, made, "standard encoder")


def run_sink(bootstrap: str, topic: str, batches: list[Batch], base: Path) -> Timing:
    sink = sink_for(bootstrap, topic, base)
    try:
        began, cpu = time.perf_counter(), time.thread_time()
        for batch in batches:
            sink.apply(batch)
        return time.perf_counter() - began, time.thread_time() - cpu
    finally:
        sink.close()


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-size"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(PARTITIONS))
    finally:
        consumer.close()


def sink_vs_raw(bootstrap: str, rows: int, rounds: int, base: Path) -> dict[str, Any]:
    events = mysql_events(rows)
    batches = [Batch(tuple(events[i:i + BATCH]), i) for i in range(0, len(events), BATCH)]
    topic = new_topic(bootstrap, "bench-sink")
    probe = sink_for(bootstrap, topic, base)
    messages = encoded(probe, events)
    probe.close()
    assert len(messages) == len(events)  # no key changes in this workload
    seconds: dict[str, list[float]] = {"raw": [], "standard": [], "sink": []}
    cpu: dict[str, list[float]] = {name: [] for name in seconds}
    runs = {
        "raw": lambda: run_raw(bootstrap, messages),
        "standard": lambda: run_standard_encoder(bootstrap, topic, events,
                                                 [m[3] for m in messages]),
        "sink": lambda: run_sink(bootstrap, topic, batches, base),
    }
    for index in range(rounds):
        before = topic_size(bootstrap, topic)
        order = list(runs) if index % 2 == 0 else list(reversed(runs))
        for which in order:
            wall, used = runs[which]()
            seconds[which].append(wall)
            cpu[which].append(used)
        if topic_size(bootstrap, topic) - before != len(runs) * len(messages):
            raise SystemExit("a run did not deliver every message")
        print(f"  round {index + 1}: " + ", ".join(
            f"{name} {len(messages) / found[-1]:,.0f}/s" for name, found in seconds.items()),
            flush=True)
    best = {name: min(found) for name, found in seconds.items()}
    return {
        "events": len(events), "messages": len(messages), "batch": BATCH,
        "seconds": seconds,
        "best_per_s": {name: len(messages) / value for name, value in best.items()},
        "ratio_best": best["raw"] / best["sink"],
        "ratio_per_round": [r / s for r, s in zip(seconds["raw"], seconds["sink"],
                                                  strict=True)],
        "sink_vs_standard_encoder": best["standard"] / best["sink"],
        # what the producing thread itself spends on a message: less noisy than wall time
        "thread_cpu_us_per_message": {name: 1e6 * min(used) / len(messages)
                                      for name, used in cpu.items()},
    }


def new_topic(bootstrap: str, prefix: str) -> str:
    name = f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(timeout=30)
    return name


# -- 2. end to end ---------------------------------------------------------------------


def prepare_binlog(mariadb: MariaDBServer, rows: int) -> tuple[str, int]:
    """The narrow workload's changes on MariaDB; returns where they start."""
    shape = SHAPES["narrow"]
    with mariadb.connect(None, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        cur.execute(f"CREATE TABLE {DATABASE}.narrow {shape.mysql_columns}")
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        cur.execute(f"USE {DATABASE}")
        _changes(cur, "narrow", shape, rows, SMALL_TXN)
    return str(file), int(pos)


def checkpoint_offsets(path: Path) -> int:
    try:
        position = json.loads(path.read_text())["position"]
    except (FileNotFoundError, ValueError, KeyError):
        return 0
    return sum(sum(parts.values()) for parts in position["offsets"].values())


def end_to_end(bootstrap: str, mariadb: MariaDBServer, rows: int, base: Path) -> dict[str, Any]:
    start = prepare_binlog(mariadb, rows)
    events = 2 * rows + rows // 2
    work = base / "e2e"
    work.mkdir()
    topic = new_topic(bootstrap, "bench-e2e")
    publish = {"source": {"type": "mysql", "dsn": mariadb.dsn, "tables": [f"{DATABASE}.narrow"],
                          "start": f"{start[0]}:{start[1]}"},
               "sinks": [{"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic}],
               "status_interval": 0, "checkpoint": "none"}
    worker = {"source": {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [topic],
                         "group": "bench-e2e"},
              "sinks": [{"type": "null"}], "status_interval": 0, "checkpoint_interval": 0.05}
    alone = {**worker, "source": {**worker["source"], "group": "bench-alone"}}
    to_null = {**publish, "sinks": [{"type": "null"}]}
    write_config(work, {"publish": publish, "worker": worker, "alone": alone,
                        "to_null": to_null})
    env = {**os.environ, "MEEPO_DISABLE_PLUGINS": "es,redis,sqlalchemy"}
    log = (work / "worker.log").open("wb")
    runner = subprocess.Popen(meepo_command("run", "worker"), cwd=work, env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while b"assigned" not in (work / "worker.log").read_bytes():
            if time.monotonic() > deadline or runner.poll() is not None:
                raise SystemExit("the worker did not join:\n"
                                 + (work / "worker.log").read_text()[-2000:])
            time.sleep(0.05)
        began = time.perf_counter()
        subprocess.run(meepo_command("run", "publish", "--once"), cwd=work, env=env,
                       check=True, capture_output=True)
        published = time.perf_counter() - began
        while checkpoint_offsets(work / ".meepo" / "worker.json") < events:
            if runner.poll() is not None or time.perf_counter() - began > 600:
                raise SystemExit("the worker stopped or stalled:\n"
                                 + (work / "worker.log").read_text()[-2000:])
            time.sleep(0.01)
        both = time.perf_counter() - began
    finally:
        runner.terminate()
        runner.wait(30)
        log.close()
    began = time.perf_counter()
    subprocess.run(meepo_command("run", "alone", "--once"), cwd=work, env=env, check=True,
                   capture_output=True)
    worker_alone = time.perf_counter() - began
    began = time.perf_counter()
    subprocess.run(meepo_command("run", "to_null", "--once"), cwd=work, env=env, check=True,
                   capture_output=True)
    mysql_to_null = time.perf_counter() - began
    topic2 = new_topic(bootstrap, "bench-e2e-alone")
    write_config(work, {"publish": {**publish, "sinks": [{**publish["sinks"][0],
                                                          "topic": topic2}]}})
    began = time.perf_counter()
    subprocess.run(meepo_command("run", "publish", "--once"), cwd=work, env=env, check=True,
                   capture_output=True)
    publish_alone = time.perf_counter() - began
    return {
        "events": events,
        "end_to_end_per_s": events / both, "end_to_end_seconds": both,
        "publisher_done_seconds": published,
        "publish_alone_per_s": events / publish_alone,
        "mysql_to_null_per_s": events / mysql_to_null,
        "worker_alone_per_s": events / worker_alone,
        "note": "wall time of `meepo run` processes, interpreter start-up included",
    }


# -- 3. profile ------------------------------------------------------------------------


def profile(bootstrap: str, rows: int, base: Path) -> dict[str, Any]:
    """py-spy over a child that runs the sink half of step 1; top own-time functions."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    raw = base / "profile.txt"
    subprocess.run([spy, "record", "--format", "raw", "--rate", "250", "--output", str(raw),
                    "--nonblocking", "--", sys.executable, __file__, "--sink-only",
                    "--bootstrap", bootstrap, "--rows", str(rows)],
                   check=True, capture_output=True)
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("run_sink" in frame for frame in frames):
            continue  # set-up: making events, opening the sink
        total += int(count)
        own[_short(frames[-1])] += int(count)
    return {"samples": total,
            "top_own_time": [(name, round(100 * n / total, 1)) for name, n in own.most_common(12)]}


def _short(frame: str) -> str:
    """``apply (meepo_kafka/sink.py:123)`` -> ``meepo_kafka/sink.py:apply``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{name}"


def sink_only(bootstrap: str, rows: int) -> None:
    events = mysql_events(rows)
    batches = [Batch(tuple(events[i:i + BATCH]), i) for i in range(0, len(events), BATCH)]
    with tempfile.TemporaryDirectory() as tmp:
        run_sink(bootstrap, new_topic(bootstrap, "bench-profile"), batches, Path(tmp))


# -- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--e2e-rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--sink-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink_only:
        sink_only(args.bootstrap, args.rows)
        return
    fingerprint = code_fingerprint()
    with tempfile.TemporaryDirectory(prefix="meepo-bench-kafka-") as tmp:
        base = Path(tmp)
        with KafkaServer(base / "kafka") as kafka, MariaDBServer(base / "mariadb") as mariadb:
            print(f"sink vs raw produce, {args.rows:,} rows ({args.rounds} rounds):", flush=True)
            results: dict[str, Any] = {
                "machine": {**machine(), "kafka_libraries": _kafka_versions()},
                "sink_vs_raw": sink_vs_raw(kafka.bootstrap, args.rows, args.rounds, base),
            }
            print("end to end (MariaDB -> kafka sink -> kafka source -> null):", flush=True)
            results["end_to_end"] = end_to_end(kafka.bootstrap, mariadb, args.e2e_rows, base)
            if not args.no_profile:
                print("profiling the sink with py-spy:", flush=True)
                results["sink_profile"] = profile(kafka.bootstrap, args.rows // 2, base)
    if code_fingerprint() != fingerprint:
        raise SystemExit("the code changed while the benchmark ran; run it again")
    results["code"] = fingerprint
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"results: {RESULTS}")


def _kafka_versions() -> dict[str, str]:
    import confluent_kafka

    return {"confluent-kafka": metadata.version("confluent-kafka"),
            "meepo-kafka": metadata.version("meepo-kafka"),
            "librdkafka": confluent_kafka.libversion()[0]}


def table(results: dict[str, Any]) -> str:
    s, e = results["sink_vs_raw"], results["end_to_end"]
    rounds = ", ".join(f"{r:.3f}" for r in s["ratio_per_round"])
    best, cpu = s["best_per_s"], s["thread_cpu_us_per_message"]
    lines = [
        "",
        "| Measure | Result |",
        "| --- | --- |",
        f"| raw confluent-kafka produce of the pre-encoded messages (best) | "
        f"{best['raw']:,.0f} messages/s |",
        f"| kafka sink: encode + produce + wait for acks per {s['batch']} events (best) | "
        f"{best['sink']:,.0f} messages/s |",
        f"| sink / raw (best of {len(s['ratio_per_round'])}; target >= 0.8) | "
        f"{s['ratio_best']:.3f} (rounds: {rounds}) |",
        f"| CPU of the producing thread per message: raw / sink / hand-written (least) | "
        f"{cpu['raw']:.2f} / {cpu['sink']:.2f} / {cpu['standard']:.2f} µs |",
        f"| hand-written producer with meepo-core's event_to_json (best) | "
        f"{best['standard']:,.0f} messages/s (sink is {s['sink_vs_standard_encoder']:.2f}x) |",
        f"| MariaDB -> Kafka -> worker -> null, concurrently | "
        f"{e['end_to_end_per_s']:,.0f} events/s ({e['events']:,} events) |",
        f"| mysql -> kafka alone (`meepo run --once`) | {e['publish_alone_per_s']:,.0f} events/s |",
        f"| kafka -> null alone (`meepo run --once`) | {e['worker_alone_per_s']:,.0f} events/s |",
        f"| for reference, mysql -> null (`meepo run --once`) | "
        f"{e['mysql_to_null_per_s']:,.0f} events/s |",
    ]
    prof = results.get("sink_profile") or {}
    if prof.get("top_own_time"):
        lines += ["", f"sink profile (py-spy, {prof['samples']} samples, own time):"]
        lines += [f"  {share:5.1f}%  {name}" for name, share in prof["top_own_time"]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
