"""Side-by-side throughput: the elasticsearch sink vs. raw ``helpers.bulk`` of the same
documents with the same external versions, against one ES-API server.

    python bench/bench_es_sink.py [--url http://127.0.0.1:9200] [--rows 20000]

Without --url it starts a noida-db server in a temp dir. Prints the best rows/s of each over
alternating runs and the ratio sink/raw (the sink adds conversion, per-item classification
and dead-letter bookkeeping).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, helpers
from meepo_es.elasticsearch_sink import ElasticsearchSink
from meepo_testkit.servers import ElasticsearchServer

from meepo_core import Batch, Options, RowEvent
from meepo_core.testing import make_context

STAMP = datetime(2026, 1, 1, tzinfo=UTC)


def rows(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"name {i}", "qty": i % 100, "price": Decimal(i) / 100,
             "updated": STAMP, "note": "x" * 40, "flag": i % 2 == 0} for i in range(1, count + 1)]


def bench_sink(url: str, data: list[dict[str, Any]], tmp: Path, batch: int, run: int) -> float:
    index = f"bench_sink_{run}"
    options = Options({"type": "elasticsearch", "hosts": [url], "index": index}, "s", tmp)
    sink = ElasticsearchSink.from_options(options)
    sink.open(make_context(tmp))
    events = [RowEvent("shop", "bench", "write", r["id"], None, r, None, STAMP, None, r["id"])
              for r in data]
    began = time.perf_counter()
    for start in range(0, len(events), batch):
        sink.apply(Batch(tuple(events[start:start + batch]), start))
    elapsed = time.perf_counter() - began
    sink.close()
    return len(data) / elapsed


def bench_raw(url: str, data: list[dict[str, Any]], batch: int, run: int) -> float:
    client = Elasticsearch(url)
    index = f"bench_raw_{run}"
    client.indices.create(index=index)
    began = time.perf_counter()
    actions = ({"_index": index, "_id": str(r["id"]), "_version": r["id"],
                "_version_type": "external",
                "_source": {**r, "price": str(r["price"]), "updated": r["updated"].isoformat()}}
               for r in data)
    helpers.bulk(client, actions, chunk_size=batch)
    elapsed = time.perf_counter() - began
    client.close()
    return len(data) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs; best counts")
    args = parser.parse_args()
    data = rows(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        server = None if args.url else ElasticsearchServer(Path(tmp) / "es").start()
        url = args.url or server.url  # type: ignore[union-attr]
        try:
            raws, sinks = [], []
            for run in range(args.repeat):  # alternate, so server warm-up and growth even out
                raws.append(bench_raw(url, data, args.batch, run))
                sinks.append(bench_sink(url, data, Path(tmp), args.batch, run))
            raw, sink = max(raws), max(sinks)
        finally:
            if server is not None:
                server.close()
    print(f"raw helpers.bulk: {raw:,.0f} rows/s")
    print(f"meepo es sink:    {sink:,.0f} rows/s")
    print(f"ratio sink/raw:   {sink / raw:.2f}")


if __name__ == "__main__":
    main()
