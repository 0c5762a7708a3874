"""The MariaDB part of ``bench_debezium.py``: one binlog range read by Debezium's MySQL
connector and by meepo's ``mysql`` source, each through the kafka plugin's protocol proxy
(``plugins/meepo_kafka/tools/mysql_version_proxy.py``) running in its own process.

The range: table ``t`` is created, the binlog position noted, then N inserts, N updates
and N deletes are written (1,000 rows per statement, each its own transaction), and
nothing else is written to the binlog afterwards. Every reader starts at the noted
position and reads to the range's end:

* meepo's source is given it (``start = "FILE:POS"``; ``--once`` ends where the binlog
  ended when it started: the range's end);
* Debezium (``snapshot.mode = no_data``) starts where its snapshot finds the binlog's end,
  read with the status query (``SHOW BINARY LOG STATUS``, columns 1 and 2): its proxy is
  started with ``--position FILE:POS`` and answers that query with the noted position, so
  the connector streams the range from its start. Its snapshot reads the table's
  definition as it is (unchanged over the range).

Each reader, in every round, has a server id of its own (two replicas with one id make
MariaDB drop the first). Both go through a proxy process: Debezium needs it, meepo does
not, but routing both through one makes each pay the same extra hop (the binlog stream
is forwarded as it comes, unparsed). They are two processes of the same code: Debezium's
pins the status answer; meepo's must not (meepo reads the binlog's end with that query).
Neither runs in this process, so no proxy thread contends for the GIL with meepo. The
hop costs meepo nothing measurable: through the proxy and direct, alternating, 4 rounds
each (2026-12-08, load average 5), ``run`` did 46,553-57,176 messages/s at 16.7-17.5 us
CPU a message through it against 39,368-56,097 at 16.3-18.4 us direct (``loop``:
27,115-54,000 at 16.7-20.3 us against 24,498-41,904 at 17.3-19.1 us).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _debezium_runs import Subject, run_debezium, run_meepo
from meepo_testkit.servers import MariaDBServer

PROXY = (Path(__file__).resolve().parent.parent / "plugins" / "meepo_kafka" / "tools"
         / "mysql_version_proxy.py")
DATABASE = "bench"
TABLE = """CREATE TABLE t (
  id INT PRIMARY KEY, name VARCHAR(64), price DECIMAL(10,2), qty INT,
  created DATETIME, active BOOLEAN, note TEXT)"""
CHUNK = 1000
#: Server ids: Debezium's of round r is DEBEZIUM_ID + r, meepo's design i of round r
#: MEEPO_ID + 100 r + i (MariaDB itself is 1).
DEBEZIUM_ID, MEEPO_ID = 5400, 100_000


def prepare(server: MariaDBServer, rows: int) -> tuple[str, int]:
    """The workload's binlog range; returns where it starts (file, position)."""
    server.execute(f"CREATE DATABASE {DATABASE}", database=None)
    with server.connect(DATABASE, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(TABLE)
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
        for start in range(1, rows + 1, CHUNK):
            end = min(start + CHUNK - 1, rows)
            cur.execute(
                "INSERT INTO t SELECT seq, CONCAT('name ', seq), seq * 1.25, seq % 100, "
                "TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq SECOND, seq % 2 = 0, "
                f"CONCAT('a note for row ', seq) FROM seq_{start}_to_{end}")
        for statement in ("UPDATE t SET qty = qty + 1, note = 'updated' WHERE id BETWEEN "
                          "%s AND %s", "DELETE FROM t WHERE id BETWEEN %s AND %s"):
            for start in range(1, rows + 1, CHUNK):
                cur.execute(statement, (start, start + CHUNK - 1))
    return str(file), int(pos)


@contextlib.contextmanager
def proxy_process(server: MariaDBServer, position: tuple[str, int] | None = None
                  ) -> Iterator[int]:
    """The protocol proxy in a process of its own, in front of ``server``; yields its
    port. ``position``: it answers binlog status queries with it."""
    argv = [sys.executable, str(PROXY), f"{server.host}:{server.port}"]
    if position is not None:
        argv += ["--position", f"{position[0]}:{position[1]}"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("port="):
            raise SystemExit(f"the proxy did not start: {line!r}")
        yield int(line.removeprefix("port="))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # its signal to stop
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def debezium_properties(server: MariaDBServer, port: int, round_: int) -> dict[str, str]:
    """Debezium's MySQL connector (as ``record_debezium_golden.py`` runs it on MariaDB)
    through the proxy on ``port``, streaming only, without schema change records (meepo
    writes none for this range either: it holds no DDL; Debezium's would be its
    snapshot's CREATE statements, written before the first change)."""
    return {
        "name": f"bench-mariadb-{round_}",
        "connector.class": "io.debezium.connector.mysql.MySqlConnector",
        "schema.history.internal": "io.debezium.relational.history.MemorySchemaHistory",
        "database.hostname": "127.0.0.1", "database.port": str(port),
        "database.user": server.user, "database.password": server.password,
        "database.server.id": str(DEBEZIUM_ID + round_),
        "database.ssl.mode": "disabled",
        "database.include.list": DATABASE, "table.include.list": f"{DATABASE}.t",
        "snapshot.mode": "no_data", "include.schema.changes": "false",
    }


def meepo_source(port: int, start: tuple[str, int], server_id: int) -> dict[str, Any]:
    """The ``mysql`` source's options, through the proxy on ``port``, from ``start``."""
    return {"type": "mysql", "dsn": f"mysql://meepo:meepo@127.0.0.1:{port}",
            "tables": [f"{DATABASE}.t"], "start": f"{start[0]}:{start[1]}",
            "server_id": server_id}


@contextlib.contextmanager
def mariadb_subject(base: Path, bootstrap: str, rows: int) -> Iterator[Subject]:
    """A MariaDB holding the workload's range, and its two proxies, for the rounds."""
    with MariaDBServer(base / "mariadb") as server:
        start = prepare(server, rows)
        events = rows * 3
        messages = events + rows  # both write a tombstone after each delete
        with proxy_process(server, start) as pinned, proxy_process(server) as plain:

            def debezium(round_: int) -> tuple[float, float]:
                return run_debezium(debezium_properties(server, pinned, round_), messages)

            def meepo(round_: int, index: int, design: str) -> tuple[float, float]:
                source = meepo_source(plain, start, MEEPO_ID + 100 * round_ + index)
                return run_meepo(source, bootstrap, f"mariadb{index}_{round_}", base,
                                 events, design)

            yield Subject("mariadb", events, messages, debezium, meepo)
