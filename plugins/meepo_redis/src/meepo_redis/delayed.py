"""The delayed second delete: a background thread that repeats invalidations later."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("meepo.redis")

#: One scheduled job: runs the second delete; raises on failure.
Job = Callable[[], None]


class DelayedDeleter:
    """Runs each job ``delay`` seconds after it was scheduled, in schedule order.

    Best effort by design: jobs live in memory, so a crash loses the second deletes of at
    most the last ``delay`` seconds (the first delete was already durable). A failing job
    is retried once, then logged and counted through ``on_failure``. ``close`` runs what is
    still scheduled, waiting for each job's due time, so a graceful stop loses nothing.
    """

    def __init__(self, delay: float, on_failure: Callable[[BaseException], None]) -> None:
        self.delay = delay
        self.on_failure = on_failure
        self._heap: list[tuple[float, int, Job]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="meepo-redis-delayed", daemon=True)
        self._thread.start()

    def schedule(self, job: Job) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + self.delay, next(self._counter), job))
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=self.delay + 30)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._heap:
                        if self._closing:
                            return
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        _, _, job = heapq.heappop(self._heap)
                        break
                    self._cond.wait(wait)
            self._execute(job)

    def _execute(self, job: Job) -> None:
        for attempt in (1, 2):
            try:
                job()
                return
            except Exception as exc:
                if attempt == 2:
                    log.warning("delayed second delete failed twice, skipped: %s", exc)
                    self.on_failure(exc)
                    return
                time.sleep(0.1)
