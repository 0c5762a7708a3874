"""Benchmark: CPU per event of the ``postgres`` source's reader, without the sink.

Starts its own PostgreSQL (``meepo_testkit.servers.PostgresServer``) and writes the
workload of ``bench_postgres.py`` (N inserts, N updates, N deletes of a 7-column table,
1,000 rows per statement). Two measures, each the best of ``--repeat`` rounds of CPU time
(``time.process_time``; the machine is shared, wall time is noisy):

* stream: ``PostgresSource.stream(..., once=True)`` over its own copy of the slot
  (``pg_copy_logical_replication_slot``), to the end: the whole reader thread, the
  driver's reads included;
* replay: the pgoutput messages of that slot, read once and kept in memory, fed to
  the stream's decoding loop (``ReplicationStream._read``) through a stand-in cursor:
  decoding alone, no socket.

With ``--baseline DIR`` (a ``meepo_postgres`` package directory, e.g. an older checkout's
``plugins/meepo_postgres/src/meepo_postgres``) the same measures run for that copy too,
round by round side by side, and the events of both are compared (``repr`` of every
event: values, their types, positions, definitions); any difference fails the run.

Usage::

    python bench/bench_postgres_decode.py --rows 20000 --repeat 5 \
        --baseline /tmp/base/plugins/meepo_postgres/src/meepo_postgres
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import meepo_postgres
import psycopg2
import psycopg2.extras
from bench_postgres import OPTIONS, PUBLICATION, copy_slot, drop_slot, prepare
from meepo_testkit.servers import PostgresServer

from meepo_core import Batch, Options, PipelineSettings, RowEvent
from meepo_core.testing import make_context


def load_package(directory: Path, name: str) -> ModuleType:
    """The ``meepo_postgres`` package at ``directory``, imported as ``name``."""
    spec = importlib.util.spec_from_file_location(
        name, directory / "__init__.py", submodule_search_locations=[str(directory)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True, slots=True)
class Recorded:
    payload: bytes
    data_start: int


class ReplayCursor:
    """Gives recorded messages as ``read_message`` does, then ``None`` (caught up)."""

    def __init__(self, messages: list[Recorded], wal_end: int) -> None:
        self._next = iter(messages).__next__
        self.wal_end = wal_end
        self.connection = None

    def read_message(self) -> Recorded | None:
        try:
            return self._next()
        except StopIteration:
            return None


def record(server: PostgresServer, slot: str, end: int) -> list[Recorded]:
    conn = psycopg2.connect(server.url, options=OPTIONS,
                            connection_factory=psycopg2.extras.LogicalReplicationConnection)
    cur = conn.cursor()
    cur.start_replication(slot_name=slot, decode=False, options={
        "proto_version": "1", "publication_names": PUBLICATION})
    messages = []
    while True:
        message = cur.read_message()
        if message is None:
            if cur.wal_end >= end:
                break
            cur.send_feedback(reply=True)
            time.sleep(0.01)
            continue
        messages.append(Recorded(bytes(message.payload), message.data_start))
    conn.close()
    return messages


def collect(batches: Iterator[Batch], keep: bool) -> list[RowEvent] | int:
    """The events of ``batches`` (``keep``), or their count: held by nothing after their
    batch, as in a pipeline (keeping 60,000 events makes the collector's full passes
    costlier and costlier)."""
    if keep:
        return [event for batch in batches for event in batch.events]
    return sum(len(batch.events) for batch in batches)


def options(server: PostgresServer, slot: str) -> dict[str, Any]:
    return {"type": "postgres", "dsn": server.url, "tables": ["public.t"], "slot": slot,
            "publication": PUBLICATION, "start": "slot", "heartbeat": 3600}


def run_stream(package: ModuleType, server: PostgresServer, slot: str,
               workdir: Path, keep: bool) -> tuple[float, list[RowEvent] | int]:
    source = package.PostgresSource.from_options(
        Options(options(server, slot), "source", workdir))
    context = make_context(workdir, "bench", PipelineSettings(batch_size=1000))
    batches = source.stream(None, context, once=True)
    began = time.process_time()
    events = collect(batches, keep)
    cpu = time.process_time() - began
    source.close()
    return cpu, events


def run_replay(package: ModuleType, server: PostgresServer, messages: list[Recorded],
               wal_end: int, workdir: Path, keep: bool) -> tuple[float, list[RowEvent] | int]:
    settings = package.config.parse_settings(
        Options(options(server, "unused"), "source", workdir))
    control = package.server.ControlConnection(settings)
    context = make_context(workdir, "bench", PipelineSettings(batch_size=1000))
    stream = package.stream.ReplicationStream(
        settings, control, context, slot="unused", publication=PUBLICATION,
        once_until=wal_end, known_tables={("public", "t")})
    stream._cursor = ReplayCursor(messages, wal_end)
    stream.committed = package.positions.WalPosition(0)
    began = time.process_time()
    events = collect(stream._read(), keep)
    cpu = time.process_time() - began
    control.close()
    return cpu, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--no-stream", action="store_true", help="replay only")
    parser.add_argument("--no-check", action="store_true",
                        help="no round 0 (events not compared): for profiles")
    args = parser.parse_args()
    packages = {"current": meepo_postgres}
    if args.baseline is not None:
        packages = {"baseline": load_package(args.baseline, "meepo_postgres_baseline"),
                    **packages}
    for package in packages.values():
        for sub in ("config", "server", "stream", "positions"):
            importlib.import_module(f"{package.__name__}.{sub}")
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="meepo-bench-pgdec-") as tmp:
        workdir = Path(tmp)
        with PostgresServer(workdir / "pg") as server:
            events, end = prepare(server, args.rows)
            copy_slot(server, "bench_record")
            messages = record(server, "bench_record", end)
            drop_slot(server, "bench_record")
            print(f"{events} row events, {len(messages)} messages")
            reference: list[str] | None = None
            # Round 0 checks the events (kept, compared) and is not timed.
            for number in range(1 if args.no_check else 0, args.repeat + 1):
                names = list(packages)
                if number % 2:
                    names.reverse()
                line = []
                for name in names:
                    measures = [("replay", None)]
                    if not args.no_stream:
                        measures.append(("stream", f"bench_{name}_{number}"))
                    for measure, slot in measures:
                        if slot is None:
                            cpu, got = run_replay(packages[name], server, messages, end,
                                                  workdir, keep=number == 0)
                        else:
                            copy_slot(server, slot)
                            cpu, got = run_stream(packages[name], server, slot, workdir,
                                                  keep=number == 0)
                            drop_slot(server, slot)
                        total = got if isinstance(got, int) else len(got)
                        assert total == events, (name, measure, total, events)
                        if isinstance(got, list):
                            text = [repr(e) for e in got]
                            if reference is None:
                                reference = text
                            elif text != reference:
                                diff = next(i for i, (a, b) in enumerate(
                                    zip(text, reference, strict=True)) if a != b)
                                raise SystemExit(f"events differ ({name} {measure}) at {diff}:"
                                                 f"\n{text[diff]}\n{reference[diff]}")
                            continue
                        key = f"{name} {measure}"
                        best[key] = min(best.get(key, cpu), cpu)
                        line.append(f"{key} {1e6 * cpu / events:.2f}")
                if line:
                    print(f"round {number} (us/event): " + ", ".join(line))
    print("\nbest CPU us/event:")
    for key, cpu in sorted(best.items()):
        print(f"  {key:<20}{1e6 * cpu / events:8.2f}")
    if args.baseline is not None:
        for measure in ("replay", "stream"):
            if f"current {measure}" in best:
                ratio = best[f"current {measure}"] / best[f"baseline {measure}"]
                print(f"  {measure}: current/baseline = {ratio:.3f}")
    if reference is not None:
        print("events identical across readers" if len(packages) > 1 else "")


if __name__ == "__main__":
    main()
