"""Pipeline metrics, a one-line status, and an optional Prometheus text endpoint."""

from __future__ import annotations

import json
import operator
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .events import Batch, Position, qualified_name

#: Upper bounds (seconds) of the batch-latency histogram buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_TABLE_ACTION = operator.attrgetter("schema", "table", "action")


class Metrics:
    """Thread-safe counters for one pipeline. The runner records; anyone may read."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.events: Counter[tuple[str, str]] = Counter()  # (qualified table, action)
        self.failures: Counter[tuple[str, str]] = Counter()  # (sink, kind)
        self.batches = 0
        self.latency_buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.lag_seconds: float | None = None
        self.position: Position | None = None
        self.checkpoints = 0
        self.snapshot_rows: Counter[str] = Counter()  # qualified table -> rows copied
        self.snapshot_chunks: Counter[str] = Counter()
        self.snapshot_progress: dict[str, float] = {}  # table -> done / estimate, 1 when done
        self.dropped: Counter[str] = Counter()  # transform label -> events it dropped
        self._window_events = 0
        self._window_start = time.monotonic()

    @property
    def events_total(self) -> int:
        """Row events applied (schema changes are counted apart, see below)."""
        return sum(n for (_, action), n in self.events.items() if action != "schema")

    @property
    def schema_changes_total(self) -> int:
        """Schema changes delivered."""
        return sum(n for (_, action), n in self.events.items() if action == "schema")

    @property
    def dead_letters(self) -> int:
        """Events recorded as dead letters, all sinks together."""
        return sum(n for (_, kind), n in self.failures.items() if kind == "dead_letter")

    def record_batch(self, batch: Batch, seconds: float) -> None:
        """Count an applied batch, its apply latency and the lag behind its last commit."""
        with self._lock:
            self.batches += 1
            self.latency_sum += seconds
            for index, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.latency_buckets[index] += 1
            # Counted in C (Counter over attrgetter), then merged: a few keys per batch.
            for (schema, table, action), count in Counter(
                    map(_TABLE_ACTION, batch.events)).items():
                self.events[(qualified_name(schema, table), action)] += count
            for _, change in batch.schema_changes:
                self.events[(change.qualified_table, "schema")] += 1
            self._window_events += len(batch.events)
            if batch.events:
                last = batch.events[-1].committed_at
                self.lag_seconds = max(0.0, (datetime.now(UTC) - last).total_seconds())

    def record_failure(self, sink: str, kind: str, count: int = 1) -> None:
        """Count sink failures; ``kind`` is ``retry`` or ``dead_letter``."""
        with self._lock:
            self.failures[(sink, kind)] += count

    def record_dropped(self, transform: str, count: int) -> None:
        """Count events a transform (by label) dropped, such as a filter's."""
        with self._lock:
            self.dropped[transform] += count

    def record_snapshot_chunk(self, table: str, rows: int, progress: float | None) -> None:
        """Count a snapshot chunk of ``table``, the rows it delivered, and the table's
        progress (0..1, None when the size is unknown)."""
        with self._lock:
            self.snapshot_chunks[table] += 1
            self.snapshot_rows[table] += rows
            if progress is not None:
                self.snapshot_progress[table] = progress

    def record_checkpoint(self, position: Position) -> None:
        with self._lock:
            self.position = position
            self.checkpoints += 1

    def status_line(self) -> str:
        """One line: events/s since the last call, lag, totals and the checkpoint."""
        with self._lock:
            now = time.monotonic()
            rate = self._window_events / max(now - self._window_start, 1e-9)
            self._window_events, self._window_start = 0, now
            lag = "n/a" if self.lag_seconds is None else f"{self.lag_seconds:.2f}s"
            dead = sum(n for (_, kind), n in self.failures.items() if kind == "dead_letter")
            dropped = f" dropped={sum(self.dropped.values())}" if self.dropped else ""
            rows, changes = self.events_total, self.schema_changes_total
            schema = f" schema_changes={changes}" if changes else ""
            return (
                f"pipeline={self.pipeline} events/s={rate:.1f} lag={lag} "
                f"events={rows}{schema} dead_letters={dead}{dropped} "
                f"position={json.dumps(self.position, separators=(',', ':'))}"
            )

    def prometheus(self) -> str:
        """The metrics in Prometheus text exposition format."""
        name = _label(self.pipeline)
        lines = [
            "# HELP meepo_events_total Events applied to every sink.",
            "# TYPE meepo_events_total counter",
        ]
        with self._lock:
            for (table, action), count in sorted(self.events.items()):
                lines.append(
                    f'meepo_events_total{{pipeline="{name}",table="{_label(table)}",'
                    f'action="{action}"}} {count}'
                )
            lines += [
                "# HELP meepo_sink_failures_total Sink retries and dead letters.",
                "# TYPE meepo_sink_failures_total counter",
            ]
            for (sink, kind), count in sorted(self.failures.items()):
                lines.append(
                    f'meepo_sink_failures_total{{pipeline="{name}",sink="{_label(sink)}",'
                    f'kind="{kind}"}} {count}'
                )
            if self.dropped:
                lines += [
                    "# HELP meepo_transform_dropped_total Events a transform dropped.",
                    "# TYPE meepo_transform_dropped_total counter",
                ]
                for transform, count in sorted(self.dropped.items()):
                    lines.append(f'meepo_transform_dropped_total{{pipeline="{name}",'
                                 f'transform="{_label(transform)}"}} {count}')
            snapshot_series = (
                ("meepo_snapshot_rows_total", "Rows copied by snapshots.", "counter",
                 self.snapshot_rows, "{}"),
                ("meepo_snapshot_chunks_total", "Snapshot chunks delivered.", "counter",
                 self.snapshot_chunks, "{}"),
                ("meepo_snapshot_progress", "Share of a table's estimated rows copied.",
                 "gauge", self.snapshot_progress, "{:.4f}"),
            )
            for metric, help_text, kind, values, spelled in snapshot_series:
                lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
                for table, value in sorted(values.items()):
                    lines.append(f'{metric}{{pipeline="{name}",table="{_label(table)}"}} '
                                 + spelled.format(value))
            lines += [
                "# HELP meepo_batch_seconds Time for all sinks to apply a batch.",
                "# TYPE meepo_batch_seconds histogram",
            ]
            for bound, count in zip(LATENCY_BUCKETS, self.latency_buckets, strict=True):
                lines.append(
                    f'meepo_batch_seconds_bucket{{pipeline="{name}",le="{bound}"}} {count}'
                )
            lines += [
                f'meepo_batch_seconds_bucket{{pipeline="{name}",le="+Inf"}} {self.batches}',
                f'meepo_batch_seconds_sum{{pipeline="{name}"}} {self.latency_sum}',
                f'meepo_batch_seconds_count{{pipeline="{name}"}} {self.batches}',
                "# HELP meepo_lag_seconds Now minus the commit time of the last applied event.",
                "# TYPE meepo_lag_seconds gauge",
                f'meepo_lag_seconds{{pipeline="{name}"}} {self.lag_seconds or 0.0}',
                "# HELP meepo_checkpoints_total Checkpoints saved.",
                "# TYPE meepo_checkpoints_total counter",
                f'meepo_checkpoints_total{{pipeline="{name}"}} {self.checkpoints}',
                "# HELP meepo_checkpoint_info The last saved checkpoint position.",
                "# TYPE meepo_checkpoint_info gauge",
                f'meepo_checkpoint_info{{pipeline="{name}",'
                f'position="{_label(json.dumps(self.position))}"}} 1',
            ]
        return "\n".join(lines) + "\n"


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def serve_metrics(
    metrics: Iterable[Metrics], port: int, host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    """Serve ``GET /metrics`` for the given pipelines in a daemon thread; returns the server
    (call ``shutdown()`` to stop). Port 0 picks a free port (see ``server.server_port``)."""
    pipelines = list(metrics)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") not in ("/metrics", ""):
                self.send_error(404)
                return
            body = "".join(m.prometheus() for m in pipelines).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="meepo-metrics", daemon=True).start()
    return server
