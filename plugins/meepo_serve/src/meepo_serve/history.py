"""The last hour of each pipeline's event count and lag, sampled for rates and plots."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

#: Seconds between samples; an hour of them is kept.
SAMPLE_SECONDS = 2.0
HOUR = 3600.0


@dataclass(frozen=True)
class Sample:
    at: float  # Unix time
    events: int  # events applied since the service started (across restarts)
    lag: float  # seconds


class History:
    """A ring of :class:`Sample` s covering the last hour; thread-safe."""

    def __init__(self, span: float = HOUR, every: float = SAMPLE_SECONDS) -> None:
        self._samples: deque[Sample] = deque(maxlen=int(span / every) + 1)
        self._lock = threading.Lock()

    def add(self, events: int, lag: float, at: float | None = None) -> None:
        with self._lock:
            self._samples.append(Sample(time.time() if at is None else at, events, lag))

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def rate(self, window: float, now_events: int, now: float | None = None) -> float:
        """Events per second over the last ``window`` seconds (less when the history is
        shorter), from the oldest sample inside the window to ``now_events``."""
        now = time.time() if now is None else now
        with self._lock:
            base = next((s for s in self._samples if s.at >= now - window), None)
        if base is None or now - base.at < 0.5:
            return 0.0
        return max(0, now_events - base.events) / (now - base.at)
