"""Building transform chains from config: ``transforms = [...]`` of a pipeline and of each
sink."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..options import Options
from .base import Transform
from .chain import ON_ERROR, OnError, Step, TransformChain

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
        on_error: OnError = options.choice(  # type: ignore[assignment]
            "on_error", ON_ERROR, "dead_letter")
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
