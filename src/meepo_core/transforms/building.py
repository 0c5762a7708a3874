"""Building transform chains from config: ``transforms = [...]`` of a pipeline and of each
sink."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..options import Options, OptionSpec
from .base import Transform
from .chain import ON_ERROR, OnError, Step, TransformChain

#: The option every transform takes, read by the core (the transform's own options do not
#: see it).
ON_ERROR_OPTION = OptionSpec(
    "on_error", "string", "dead_letter",
    '`"dead_letter"`: an event the transform raises on goes to the dead-letter store with '
    'the error, and the pipeline goes on; `"stop"`: the run stops (exit 1, checkpoint '
    "before the batch).", choices=ON_ERROR)

if TYPE_CHECKING:
    from ..plugins import Registry

#: The key of a pipeline or sink table that lists its transforms.
KEY = "transforms"


def build_chain(
    registry: Registry, raw: Any, key_path: str, base_dir: Path, label_prefix: str = ""
) -> TransformChain | None:
    """The chain configured by ``raw`` (the value of a ``transforms`` key, at
    ``key_path``), validated; None when it lists no transform. Each transform is labelled
    ``"{label_prefix}transforms[i] TYPE"`` in logs and dead letters."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ConfigError(key_path, 'must be an array of tables like [{ type = "filter", '
                          'where = "..." }]')
    steps = []
    for index, item in enumerate(raw):
        path = f"{key_path}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(path, 'must be a table like { type = "filter", where = "..." }')
        options = Options(item, path, base_dir)
        name = options.string("type")
        # read apart, so that a transform's own declaration need not list it
        on_error: OnError = Options(  # type: ignore[assignment]
            {k: v for k, v in item.items() if k == ON_ERROR_OPTION.name}, path, base_dir,
        ).choice(ON_ERROR_OPTION)
        options.allow(ON_ERROR_OPTION.name)
        cls = registry.lookup("transform", name, options.key_path("type"))
        transform = cls.from_options(options)
        if not isinstance(transform, Transform):
            raise ConfigError(options.key_path("type"), f"transform type {name!r} did not "
                              "build a meepo_core.Transform; fix its plugin")
        transform.label = f"{label_prefix}{KEY}[{index}] {name}"
        transform.key_path = path
        steps.append(Step(transform, on_error))
    return TransformChain(steps) if steps else None


def split_sink_options(raw: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A sink's table without its ``transforms`` key (which the core reads, not the sink),
    and that key's value (None when absent)."""
    if KEY not in raw:
        return raw, None
    return {key: value for key, value in raw.items() if key != KEY}, raw[KEY]
