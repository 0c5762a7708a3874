"""Pipeline-level settings: the one place where every tuning key and its default live,
declared as :class:`~meepo_core.options.OptionSpec` s (the docs' table of them is generated
from these)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .options import Options, OptionSpec

SnapshotMode = Literal["never", "initial", "initial_only"]
SNAPSHOT_MODES: tuple[SnapshotMode, ...] = ("never", "initial", "initial_only")

BATCH_SIZE = OptionSpec("batch_size", "integer", 1000, "Most events per batch.", minimum=1)
BATCH_WAIT = OptionSpec(
    "batch_wait", "number", 0.2,
    "Seconds a source may wait to fill a batch of small transactions while changes keep "
    "arriving; once caught up it delivers at once.", minimum=0)
QUEUE_SIZE = OptionSpec("queue_size", "integer", 8,
                        "Batches read ahead of the sinks (the back-pressure bound).", minimum=1)
MAX_RETRIES = OptionSpec(
    "max_retries", "integer", 10,
    "Retries of a failing sink before the run stops (exit 1, checkpoint kept).", minimum=0)
RETRY_BACKOFF = OptionSpec(
    "retry_backoff", "number", 0.5,
    "Seconds before the first retry; each further one waits twice as long (0.5, 1, 2, ...).",
    minimum=0)
RETRY_BACKOFF_MAX = OptionSpec("retry_backoff_max", "number", 30.0,
                               "The longest wait between two retries, in seconds.", minimum=0)
CHECKPOINT_INTERVAL = OptionSpec(
    "checkpoint_interval", "number", 1.0,
    "Seconds between checkpoints while busy; an idle pipeline checkpoints within 0.2 s.",
    minimum=0)
STATUS_INTERVAL = OptionSpec(
    "status_interval", "number", 10.0,
    "Seconds between status lines (`events/s`, `lag`, `position`); 0 turns them off.",
    minimum=0)
METRICS_PORT = OptionSpec(
    "metrics_port", "integer", None,
    "Serve Prometheus metrics on `127.0.0.1:PORT/metrics`: events by pipeline, table and "
    "action, batch latency histogram, lag, checkpoints, sink failures, snapshot rows, chunks "
    "and progress; none: off.", minimum=0)
SNAPSHOT = OptionSpec(
    "snapshot", "string", "never",
    '`"initial"`: when the pipeline has no checkpoint, copy the current rows of every table '
    "first, while streaming (see [Snapshots](snapshots.md)); `\"initial_only\"`: copy, then "
    'exit 0; `"never"`: stream only.', choices=SNAPSHOT_MODES)
SNAPSHOT_CHUNK_SIZE = OptionSpec(
    "snapshot_chunk_size", "integer", 1024,
    "Rows per snapshot chunk (one key-ordered `SELECT` between two watermarks).", minimum=1)
MAX_LAG = OptionSpec(
    "max_lag", "number", None,
    "Seconds of lag above which `meepo serve` (meepo-serve) reports the pipeline not ready "
    "on `/readyz`; `meepo run` ignores it.", minimum=0)
#: The tuning keys of a pipeline's table.
PIPELINE_OPTIONS = (BATCH_SIZE, BATCH_WAIT, QUEUE_SIZE, MAX_RETRIES, RETRY_BACKOFF,
                    RETRY_BACKOFF_MAX, CHECKPOINT_INTERVAL, STATUS_INTERVAL, METRICS_PORT,
                    SNAPSHOT, SNAPSHOT_CHUNK_SIZE, MAX_LAG)


@dataclass(frozen=True)
class PipelineSettings:
    """The tuning keys of ``[tool.meepo.pipelines.NAME]``, with their defaults (those of
    the specs above).

    Sources read ``batch_size`` and ``batch_wait`` (through the context) to group
    transactions; the runner and the delivery engine read the rest.
    """

    batch_size: int = BATCH_SIZE.default
    batch_wait: float = BATCH_WAIT.default
    queue_size: int = QUEUE_SIZE.default
    max_retries: int = MAX_RETRIES.default
    #: Exponential backoff between retries: ``retry_backoff`` * 2^n, at most the max.
    retry_backoff: float = RETRY_BACKOFF.default
    retry_backoff_max: float = RETRY_BACKOFF_MAX.default
    checkpoint_interval: float = CHECKPOINT_INTERVAL.default
    #: 0 turns status lines off.
    status_interval: float = STATUS_INTERVAL.default
    metrics_port: int | None = METRICS_PORT.default
    snapshot: SnapshotMode = SNAPSHOT.default
    snapshot_chunk_size: int = SNAPSHOT_CHUNK_SIZE.default
    #: None: no limit. ``meepo run`` does not read it.
    max_lag: float | None = MAX_LAG.default

    @classmethod
    def from_options(
        cls, options: Options, defaults: PipelineSettings | None = None
    ) -> PipelineSettings:
        """Read every key from a pipeline's options, validated; a key that is not set takes
        its value from ``defaults`` (the declared defaults unless given)."""
        # the tuning keys are read through their specs on a view of their own, since the
        # pipeline's other keys (source, sinks, ...) are read by name
        keys = {spec.name for spec in PIPELINE_OPTIONS}
        view = Options({k: v for k, v in options.data.items() if k in keys}, options.path,
                       options.base_dir)
        getters: dict[str, Callable[[OptionSpec], Any]] = {
            "integer": view.integer, "number": view.number, "string": view.choice}
        values: dict[str, Any] = {}
        for spec in PIPELINE_OPTIONS:
            options.allow(spec.name)
            value = getters[spec.type](spec)
            values[spec.name] = (value if spec.name in view.data or defaults is None
                                 else getattr(defaults, spec.name))
        return cls(**values)
