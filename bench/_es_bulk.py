"""The Elasticsearch server's own capacity: raw ``helpers.bulk`` of a workload's operations
(a subprocess), as a second reference next to the ``elasticsearch`` sink.

Sends what the sink sends for the workload, without meepo: N index operations, N more
(the updates), then N/2 deletes, 1,000 per bulk request (the sink's batch), with external
versions. Documents are real rows of the workload's table (read before timing, values
made JSON-able the way the sink does: DECIMAL and dates as strings, JSON columns parsed),
so sizes and shapes match. Prints ``{"rows": OPS, "run": SECONDS, "cpu": SECONDS}``.

    python bench/_es_bulk.py '{"url": ..., "index": ..., "connection": {...}, "database": ...,
                               "table": ..., "rows": N}'
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pymysql
import pymysql.cursors
from elasticsearch import Elasticsearch, helpers


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def operations(index: str, docs: list[dict[str, Any]], rows: int) -> Iterator[dict[str, Any]]:
    version = 0
    for _pass in range(2):
        for pk in range(1, rows + 1):
            version += 1
            yield {"_op_type": "index", "_index": index, "_id": str(pk), "version": version,
                   "version_type": "external", "_source": {**docs[pk % len(docs)], "id": pk}}
    for pk in range(1, rows // 2 + 1):
        version += 1
        yield {"_op_type": "delete", "_index": index, "_id": str(pk), "version": version,
               "version_type": "external"}


def main() -> None:
    args = json.loads(sys.argv[1])
    with pymysql.connect(**args["connection"], database=args["database"], charset="utf8mb4",
                         cursorclass=pymysql.cursors.DictCursor) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM `{args['table']}` LIMIT 1000")
        docs = [{k: plain(v) for k, v in row.items()} for row in cur.fetchall()]
    client = Elasticsearch(args["url"], request_timeout=120)
    client.options(ignore_status=404).indices.delete(index=args["index"])
    client.indices.create(index=args["index"])
    began, cpu = time.perf_counter(), time.process_time()
    ok, errors = helpers.bulk(client, operations(args["index"], docs, args["rows"]),
                              chunk_size=1000, raise_on_error=False, max_retries=0)
    run, cpu = time.perf_counter() - began, time.process_time() - cpu
    client.close()
    if errors:
        raise SystemExit(f"{len(errors)} bulk errors, first: {errors[0]}")
    print(json.dumps({"rows": ok, "run": run, "cpu": cpu}))


if __name__ == "__main__":
    main()
