"""A pipeline built from config: its source, sinks, stores and settings, validated and not
connected. :func:`load_pipeline` is the entry point for programs that embed meepo; a
:class:`~meepo_core.runner.Runner` runs a pipeline, :func:`~meepo_core.snapshots.request_snapshot`
queues a snapshot for its runs."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import Checkpoint, CheckpointStore, refuse_foreign_checkpoint
from .config import MeepoConfig, load_config
from .context import PipelineContext
from .dead_letters import DeadLetterStore
from .delivery import Delivery, WhenExhausted
from .errors import ConfigError
from .metrics import Metrics
from .options import Options
from .plugins import Registry, import_local_plugins, registry
from .position_owner import SinkPositionStore, claim_checkpoint, position_store
from .settings import PipelineSettings
from .sink import Sink
from .source import Source
from .transforms import PipelineTransforms, build_chain, split_sink_options


@dataclass
class Pipeline:
    """Everything ``meepo run NAME`` needs, built and validated but not yet connected: a
    description, which ``Runner(pipeline).run()`` runs.

    ``sinks`` are ``(label, sink)`` pairs; the label (``"sinks[0] redis"``) names the sink
    in logs, metrics and dead letters. ``identity`` is unique to the pipeline on this
    machine (host, config file and name); ``purpose`` tells a side run (``"backfill"``)
    from ``meepo run`` (``"run"``), so that both may follow one server at once. Change
    parts with :func:`dataclasses.replace` before running (e.g. a
    :class:`~meepo_core.checkpoints.MemoryCheckpointStore` for a run that must not move
    the pipeline's checkpoint).
    """

    name: str
    source: Source
    sinks: list[tuple[str, Sink]]
    checkpoints: CheckpointStore
    dead_letters: DeadLetterStore
    settings: PipelineSettings
    base_dir: Path
    identity: str
    purpose: str = "run"
    #: The pipeline's table in the config (``tool.meepo.pipelines.NAME``), for errors.
    key_path: str = ""
    #: ``transforms`` of the pipeline and of each sink, applied by the delivery engine.
    transforms: PipelineTransforms | None = None

    def context(self, metrics: Metrics | None = None) -> PipelineContext:
        """A fresh context for one run of this pipeline's source and sinks."""
        suffix = "" if self.purpose == "run" else f"#{self.purpose}"
        return PipelineContext(
            pipeline=self.name,
            metrics=metrics or Metrics(self.name),
            dead_letters=self.dead_letters,
            settings=self.settings,
            base_dir=self.base_dir,
            identity=self.identity + suffix,
            purpose=self.purpose,
            stored_position=(self.checkpoints.stored_position
                             if isinstance(self.checkpoints, SinkPositionStore) else None),
        )

    def delivery(
        self, context: PipelineContext | None = None, *, when_exhausted: WhenExhausted = "stop"
    ) -> Delivery:
        """The delivery engine over this pipeline's sinks; ``with`` opens and closes them."""
        return Delivery(self.sinks, context or self.context(), when_exhausted=when_exhausted,
                        transforms=self.transforms)

    def load_checkpoint(self, *, claim: bool = False) -> Checkpoint | None:
        """The saved checkpoint (None when there is none). Raises :class:`ConfigError`
        naming the ``checkpoint`` key when another pipeline saved it (see
        :func:`~meepo_core.checkpoints.refuse_foreign_checkpoint`). ``claim``: for a run's
        start, where a sink that owns the position fences earlier writers first (see
        :func:`~meepo_core.position_owner.claim_checkpoint`)."""
        checkpoint = claim_checkpoint(self.checkpoints) if claim else self.checkpoints.load()
        refuse_foreign_checkpoint(
            checkpoint, self.name, self.checkpoints.description,
            f"{self.key_path}.checkpoint" if self.key_path else "checkpoint",
        )
        return checkpoint


def build_pipeline(
    config: MeepoConfig, name: str, registry: Registry, defaults: PipelineSettings | None = None
) -> Pipeline:
    """Validate pipeline ``name`` completely (no I/O), raising :class:`ConfigError` with
    the full key path of the first problem. Settings the config does not set come from
    ``defaults`` (:class:`PipelineSettings`' own defaults unless given)."""
    options = config.pipeline_options(name)
    source = _build(registry, "source", options.sub("source"))
    raw_sinks = options.get("sinks", list)
    if not raw_sinks:
        raise options.error("sinks", 'must list at least one sink, e.g. [{ type = "print" }]')
    sinks: list[tuple[str, Sink]] = []
    transforms = PipelineTransforms(build_chain(
        registry, options.get("transforms", list, None), options.key_path("transforms"),
        config.base_dir))
    for index, raw in enumerate(raw_sinks):
        path = options.key_path(f"sinks[{index}]")
        if not isinstance(raw, dict):
            raise ConfigError(path, 'must be a table like { type = "print" }')
        raw, raw_transforms = split_sink_options(raw)
        sink = _build(registry, "sink", Options(raw, path, config.base_dir))
        label = f"sinks[{index}] {raw['type']}"
        sinks.append((label, sink))
        chain = build_chain(registry, raw_transforms, f"{path}.transforms", config.base_dir,
                            f"{label} ")
        if chain is not None:
            transforms.sinks[label] = chain
    checkpoint_url = options.string("checkpoint", f"file:.meepo/{name}.json")
    dead_letter_url = options.string("dead_letter", f"file:.meepo/{name}.dead.jsonl")
    checkpoints = _store(registry, "checkpoint store", options, "checkpoint", checkpoint_url, name)
    checkpoints = position_store(sinks, checkpoints, name, options.key_path("sinks"))
    dead_letters = _store(
        registry, "dead-letter store", options, "dead_letter", dead_letter_url, name
    )
    settings = PipelineSettings.from_options(options, defaults)
    if settings.snapshot != "never" and not source.supports_snapshots:
        raise options.error(
            "snapshot",
            f"the {options.sub('source').data.get('type')!r} source cannot snapshot tables; "
            'set snapshot = "never" (sources that can: mysql, sqlalchemy-outbox, postgres)',
        )
    options.done()
    identity = f"{socket.gethostname()}:{config.path.resolve()}:{name}"
    return Pipeline(
        name, source, sinks, checkpoints, dead_letters, settings, config.base_dir, identity,
        key_path=config.pipeline_path(name), transforms=transforms or None,
    )


def load_pipeline(
    name: str, config: str | Path | None = None, *, defaults: PipelineSettings | None = None
) -> Pipeline:
    """Pipeline ``name`` from ``config`` (a pyproject.toml or meepo.toml; default: the
    nearest one, as the CLI finds it), with the plugins it names loaded; validated, not
    connected. Raises :class:`ConfigError` naming the key of the first problem."""
    loaded = load_config(Path(config) if config is not None else None)
    import_local_plugins(loaded.plugins, str(loaded.base_dir))
    return build_pipeline(loaded, name, registry(loaded.plugins), defaults)


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
