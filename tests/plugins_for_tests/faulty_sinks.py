"""Sinks that fail or block on purpose, for runner tests. They are fakes, named so: they
stand in for failures (a flapping server, a process dying mid-pipeline) that a core test
cannot cause on a real server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Self

from meepo_core import Batch, Options, Sink, SinkError, hookimpl


class RecordingSink(Sink):
    """Appends every received event's name and pk to a file, with no deduplication, so a
    test can see re-deliveries."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = options.path_value("path")
        options.done()
        return cls(path)

    def record(self, batch: Batch) -> None:
        with self.path.open("a") as handle:
            for event in batch.events:
                handle.write(json.dumps([event.name, event.pk]) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


class FlakySinkFake(RecordingSink):
    """Fails its first ``failures`` applies with a ConnectionError, then records."""

    def __init__(self, path: Path, failures: int, permanent: bool) -> None:
        super().__init__(path)
        self.failures = failures
        self.permanent = permanent
        self.calls = 0

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = options.path_value("path")
        failures = options.integer("failures", 2)
        permanent = options.boolean("permanent", False)
        options.done()
        return cls(path, failures, permanent)

    def apply(self, batch: Batch) -> None:
        self.calls += 1
        if self.permanent:
            raise SinkError("rejected by the destination", retryable=False)
        if self.calls <= self.failures:
            raise ConnectionError(f"fake outage {self.calls}")
        self.record(batch)


class BlockingSinkFake(RecordingSink):
    """Records the batch, then (when ``$MEEPO_TEST_BLOCK`` is set) touches ``marker`` and
    hangs: the process is then killed between the sinks' apply and the checkpoint."""

    def __init__(self, path: Path, marker: Path) -> None:
        super().__init__(path)
        self.marker = marker

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = options.path_value("path")
        marker = options.path_value("marker")
        options.done()
        return cls(path, marker)

    def apply(self, batch: Batch) -> None:
        self.record(batch)
        if os.environ.get("MEEPO_TEST_BLOCK") and batch.events:
            self.marker.touch()
            time.sleep(3600)


@hookimpl
def meepo_register_sinks(register: Any) -> None:
    register("flaky-fake", FlakySinkFake)
    register("blocking-fake", BlockingSinkFake)
