"""How a running snapshot job reads: one line of rows done, estimate, rate and ETA, and the
bar (or log line) a run shows while it copies."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from ..serialization import decode_value
from .windows import SnapshotCoordinator

log = logging.getLogger("meepo.snapshot")


def describe_job(job: dict[str, Any], *, running: bool, now: datetime | None = None) -> str:
    """``"shop.orders: 12,288 of ~100,000 rows (12%), 4,096 rows/s, ETA 0:00:21"``."""
    rows, estimate = int(job.get("rows") or 0), job.get("estimate")
    text = f"{job['table']}: {rows:,} rows"
    if estimate:
        share = min(rows / estimate, 1)
        text = f"{job['table']}: {rows:,} of ~{int(estimate):,} rows ({share:.0%})"
    started = job.get("started_at")
    finished = job.get("finished_at")
    if started and (running or finished):
        end = datetime.fromisoformat(finished) if finished else (now or datetime.now(UTC))
        seconds = max((end - datetime.fromisoformat(started)).total_seconds(), 1e-6)
        rate = rows / seconds
        text += f", {rate:,.0f} rows/s"
        if running and estimate and rate > 0 and rows < estimate:
            eta = int((estimate - rows) / rate)
            text += f", ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}"
    if job.get("where"):
        text += f" where {decode_value(job['where'])}"
    return text


class SnapshotProgress:
    """Shows the running snapshot job: a bar redrawn in place on a terminal (stderr), a log
    line every ``interval`` seconds otherwise."""

    def __init__(self, interval: float = 5.0, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.5 if self.tty else interval
        self._last = time.monotonic()
        self._drawn = False

    def show(self, coordinator: SnapshotCoordinator) -> None:
        now = time.monotonic()
        if not coordinator.jobs or now - self._last < self.interval:
            return
        self._last = now
        job = coordinator.jobs[0].to_json()
        line = describe_job(job, running=True)
        if not self.tty:
            log.info("snapshot %s", line)
            return
        estimate, rows = job.get("estimate"), int(job.get("rows") or 0)
        filled = min(int(20 * rows / estimate), 20) if estimate else 0
        bar = "#" * filled + "-" * (20 - filled)
        self.stream.write(f"\r\x1b[Ksnapshot [{bar}] {line}"[:200])
        self.stream.flush()
        self._drawn = True

    def end(self) -> None:
        """Leave the terminal on a fresh line."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
