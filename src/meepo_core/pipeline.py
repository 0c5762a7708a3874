"""Building a runnable pipeline from its config: source, sinks and stores, all validated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import CheckpointStore
from .config import MeepoConfig
from .dead_letters import DeadLetterStore
from .errors import ConfigError
from .options import Options
from .plugins import Registry
from .sink import Sink
from .source import Source


@dataclass(frozen=True)
class RunnerSettings:
    """Pipeline-level tuning keys, with their defaults."""

    batch_size: int = 1000
    batch_wait: float = 0.2
    queue_size: int = 8
    max_retries: int = 10
    retry_backoff: float = 0.5
    retry_backoff_max: float = 30.0
    checkpoint_interval: float = 1.0
    status_interval: float = 10.0
    metrics_port: int | None = None

    @classmethod
    def from_options(cls, options: Options) -> RunnerSettings:
        d = cls()
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
            metrics_port=options.integer("metrics_port", None, minimum=0),
        )


@dataclass
class Pipeline:
    """Everything ``meepo run NAME`` needs, built but not yet connected."""

    name: str
    source: Source
    sinks: list[tuple[str, Sink]]  # (label such as "sinks[0] print", sink)
    checkpoints: CheckpointStore
    dead_letters: DeadLetterStore
    settings: RunnerSettings
    base_dir: Path


def build_pipeline(config: MeepoConfig, name: str, registry: Registry) -> Pipeline:
    """Validate pipeline ``name`` completely (no I/O), raising :class:`ConfigError` with
    the full key path of the first problem."""
    options = config.pipeline_options(name)
    source = _build(registry, "source", options.sub("source"))
    raw_sinks = options.get("sinks", list)
    if not raw_sinks:
        raise options.error("sinks", 'must list at least one sink, e.g. [{ type = "print" }]')
    sinks: list[tuple[str, Sink]] = []
    for index, raw in enumerate(raw_sinks):
        path = options.key_path(f"sinks[{index}]")
        if not isinstance(raw, dict):
            raise ConfigError(path, 'must be a table like { type = "print" }')
        sink = _build(registry, "sink", Options(raw, path, config.base_dir))
        sinks.append((f"sinks[{index}] {raw['type']}", sink))
    checkpoint_url = options.string("checkpoint", f"file:.meepo/{name}.json")
    dead_letter_url = options.string("dead_letter", f"file:.meepo/{name}.dead.jsonl")
    checkpoints = _store(registry, "checkpoint store", options, "checkpoint", checkpoint_url, name)
    dead_letters = _store(
        registry, "dead-letter store", options, "dead_letter", dead_letter_url, name
    )
    settings = RunnerSettings.from_options(options)
    options.done()
    return Pipeline(name, source, sinks, checkpoints, dead_letters, settings, config.base_dir)


def _build(registry: Registry, kind: str, options: Options) -> Any:
    """A ``Source`` or ``Sink`` of the type named by the ``type`` key."""
    cls = registry.lookup(kind, options.string("type"), options.key_path("type"))
    return cls.from_options(options)


def _store(
    registry: Registry, kind: str, options: Options, key: str, url: str, pipeline: str
) -> Any:
    scheme = url.split(":", 1)[0] if ":" in url else url
    factory = registry.lookup(kind, scheme, options.key_path(key))
    try:
        return factory(url, pipeline, options.base_dir)
    except ValueError as exc:
        raise options.error(key, str(exc)) from exc
