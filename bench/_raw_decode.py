"""The reference: python-mysql-replication alone, decoding one binlog range (a subprocess).

Reads from ``FILE:POS`` to the binlog's end (non-blocking), with the reader settings the
``mysql`` source uses (same ``only_events``, ``only_schemas``/``only_tables``,
``resume_stream``, heartbeat, utf8mb4), decodes every row (``event.rows``) and prints one
JSON line: ``{"rows": N, "run": SECONDS, "cpu": SECONDS, "hwm_kib": PEAK_RSS}`` (the
streaming phase, from creating the reader to closing it). The parent measures wall time
and CPU time of the whole process, exactly as it does for ``meepo run``.

    python bench/_raw_decode.py '{"connection": {...}, "server_id": ..., "file": ...,
                                  "pos": ..., "schema": ..., "table": ...}'
"""

from __future__ import annotations

import json
import sys
import time

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

# The events the mysql source acts on (kept literal: the reference must not import meepo).
ONLY_EVENTS = [
    WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, PartialUpdateRowsEvent, TableMapEvent,
    XidEvent, QueryEvent, RotateEvent, GtidEvent, MariadbGtidEvent, HeartbeatLogEvent,
    XAPrepareEvent,
]
ROWS_EVENTS = (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)


def main() -> None:
    args = json.loads(sys.argv[1])
    began, cpu = time.perf_counter(), time.process_time()
    reader = BinLogStreamReader(
        connection_settings={**args["connection"], "charset": "utf8mb4", "connect_timeout": 10},
        server_id=args["server_id"],
        log_file=args["file"],
        log_pos=args["pos"],
        resume_stream=True,
        blocking=False,
        only_events=ONLY_EVENTS,
        only_schemas=[args["schema"]],
        only_tables=[args["table"]],
        slave_heartbeat=10.0,
        enable_logging=False,
    )
    rows = 0
    try:
        for event in reader:
            if isinstance(event, ROWS_EVENTS):
                for _row in event.rows:
                    rows += 1
    finally:
        reader.close()
    print(json.dumps({"rows": rows, "run": time.perf_counter() - began,
                      "cpu": time.process_time() - cpu, "hwm_kib": peak_rss_kib()}))


def peak_rss_kib() -> int:
    """This process's own peak RSS (``VmHWM``; see ``_meepo_timed.peak_rss_kib``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
