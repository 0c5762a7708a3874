"""Pipeline-level settings: the one place where every tuning key and its default live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .options import Options

SnapshotMode = Literal["never", "initial", "initial_only"]
SNAPSHOT_MODES: tuple[SnapshotMode, ...] = ("never", "initial", "initial_only")


@dataclass(frozen=True)
class PipelineSettings:
    """The tuning keys of ``[tool.meepo.pipelines.NAME]``, with their defaults.

    Sources read ``batch_size`` and ``batch_wait`` (through the context) to group
    transactions; the runner and the delivery engine read the rest.
    """

    #: Most events per batch.
    batch_size: int = 1000
    #: Seconds a source may wait to fill a batch of small transactions while changes arrive.
    batch_wait: float = 0.2
    #: Batches read ahead of the sinks (the back-pressure bound).
    queue_size: int = 8
    #: Retries of a failing sink before giving up on a batch.
    max_retries: int = 10
    #: Exponential backoff between retries: ``retry_backoff`` * 2^n, at most the max.
    retry_backoff: float = 0.5
    retry_backoff_max: float = 30.0
    #: Seconds between checkpoints while busy.
    checkpoint_interval: float = 1.0
    #: Seconds between status lines; 0 turns them off.
    status_interval: float = 10.0
    #: Serve Prometheus metrics on 127.0.0.1:PORT when set.
    metrics_port: int | None = None
    #: ``"initial"``: with no checkpoint, copy the tables' current rows first (while
    #: streaming); ``"initial_only"``: copy, then stop; ``"never"``: stream only.
    snapshot: SnapshotMode = "never"
    #: Rows per snapshot chunk (one keyset-paginated SELECT between two watermarks).
    snapshot_chunk_size: int = 1024
    #: Seconds of lag above which ``meepo serve`` reports the pipeline not ready
    #: (``/readyz``); None: no limit. ``meepo run`` does not read it.
    max_lag: float | None = None

    @classmethod
    def from_options(
        cls, options: Options, defaults: PipelineSettings | None = None
    ) -> PipelineSettings:
        """Read every key from a pipeline's options, validated; a key that is not set takes
        its value from ``defaults`` (the defaults above unless given)."""
        d = defaults or cls()
        return cls(
            batch_size=options.integer("batch_size", d.batch_size, minimum=1),
            batch_wait=options.number("batch_wait", d.batch_wait, minimum=0),
            queue_size=options.integer("queue_size", d.queue_size, minimum=1),
            max_retries=options.integer("max_retries", d.max_retries, minimum=0),
            retry_backoff=options.number("retry_backoff", d.retry_backoff, minimum=0),
            retry_backoff_max=options.number("retry_backoff_max", d.retry_backoff_max, minimum=0),
            checkpoint_interval=options.number(
                "checkpoint_interval", d.checkpoint_interval, minimum=0
            ),
            status_interval=options.number("status_interval", d.status_interval, minimum=0),
            metrics_port=options.integer("metrics_port", d.metrics_port, minimum=0),
            snapshot=options.choice("snapshot", SNAPSHOT_MODES, d.snapshot),  # type: ignore[arg-type]
            snapshot_chunk_size=options.integer(
                "snapshot_chunk_size", d.snapshot_chunk_size, minimum=1
            ),
            max_lag=options.number("max_lag", d.max_lag, minimum=0),
        )
