"""The documentation of a type's options, generated from its ``OPTIONS`` declaration: the
Markdown tables of the plugin READMEs and the docs site, and the text of
``meepo plugins --options TYPE``."""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .options import OptionSpec
from .plugins import Registry

#: The kinds of type that take options (stores take a URL).
OPTION_KINDS = ("source", "sink", "transform")


def common_options(kind: str) -> tuple[OptionSpec, ...]:
    """The options every type of ``kind`` takes besides its own, read by the core
    (``"pipeline"``: a pipeline's tuning keys)."""
    from .settings import PIPELINE_OPTIONS
    from .transforms.building import ON_ERROR_OPTION

    return {"transform": (ON_ERROR_OPTION,), "pipeline": PIPELINE_OPTIONS}.get(kind, ())


@dataclass(frozen=True)
class DeclaredType:
    """One registered type and its declared options."""

    kind: str
    name: str
    plugin: str
    options: tuple[OptionSpec, ...]
    #: False for a type that does not set ``OPTIONS`` (its options are documented by hand).
    declared: bool = True


def flattened(specs: Sequence[OptionSpec], prefix: str = "") -> Iterator[tuple[str, OptionSpec]]:
    """``(dotted key, spec)`` of each option, a nested table's keys right after it
    (``debezium``, ``debezium.topic_prefix``, ...)."""
    for spec in specs:
        key = f"{prefix}{spec.name}"
        yield key, spec
        yield from flattened(spec.options, f"{key}.{spec.each}." if spec.each else f"{key}.")


def markdown_table(specs: Sequence[OptionSpec], keys: Sequence[str] = ()) -> str:
    """The options as a Markdown table: key, type, default, meaning (with the choices);
    only those named in ``keys`` (in that order) when given."""
    if keys:
        by_name = {spec.name: spec for spec in specs}
        unknown = [key for key in keys if key not in by_name]
        if unknown:
            raise KeyError(f"not declared: {', '.join(unknown)}")
        specs = [by_name[key] for key in keys]
    if not specs:
        return "This type takes no options."
    rows = ["| Key | Type | Default | Meaning |", "| --- | --- | --- | --- |"]
    for key, spec in flattened(specs):
        default = spec.shown_default.replace("|", "\\|")  # a table cell
        rows.append(f"| `{key}` | {spec.type} | {default} | {_meaning(spec)} |")
    return "\n".join(rows)


def _meaning(spec: OptionSpec) -> str:
    """The meaning, with the choices added unless it names each of them."""
    named = [c for c in spec.choices if f'`"{c}"`' in spec.meaning or f"`{c}`" in spec.meaning]
    if len(named) == len(spec.choices):
        return spec.meaning
    choices = ", ".join(f'`"{choice}"`' for choice in spec.choices)
    return f"{spec.meaning} One of {choices}."


def text_listing(declared: DeclaredType, width: int = 88) -> str:
    """The options as ``meepo plugins --options TYPE`` prints them: per option a line
    ``KEY  TYPE  default DEFAULT`` and its meaning, indented, wrapped at ``width``."""
    head = f"{declared.kind} {declared.name!r} (plugin {declared.plugin})"
    if not declared.declared:
        return f"{head}: its options are not declared (no OPTIONS); see its plugin's docs"
    if not declared.options:
        return f"{head}: no options"
    lines = [f"{head}:"]
    keys = list(flattened(declared.options))
    size = max(len(key) for key, _ in keys)
    for key, spec in keys:
        default = spec.shown_default.replace("`", "")
        default = default if default == "required" else f"default {default}"
        lines.append(f"  {key.ljust(size)}  {spec.type}, {default}")
        meaning = _meaning(spec).replace("`", "").replace("\\|", "|")
        lines += textwrap.wrap(meaning, width, initial_indent=" " * 6,
                               subsequent_indent=" " * 6)
    return "\n".join(lines)


def declared_types(registry: Registry, name: str | None = None) -> list[DeclaredType]:
    """Every source, sink and transform type (or those called ``name``) with its
    declaration; a type whose plugin fails to load is a :class:`ConfigError`."""
    found = []
    for kind in OPTION_KINDS:
        for type_name, registration in sorted(registry.types[kind].items()):
            if name is not None and type_name != name:
                continue
            factory: Any = registration.resolve(f"{kind} {type_name}")
            options = tuple(getattr(factory, "OPTIONS", ()))
            found.append(DeclaredType(kind, type_name, registration.plugin, options,
                                      _declares(factory)))
    return found


def _declares(factory: Any) -> bool:
    """Whether a type sets ``OPTIONS`` itself (or a class it shares with others does), not
    only inherits the empty one of :class:`Source`, :class:`Sink` or :class:`Transform`."""
    from .sink import Sink
    from .source import Source
    from .transforms.base import Transform

    bases = (Source, Sink, Transform, object)
    return isinstance(factory, type) and any(
        "OPTIONS" in vars(klass) for klass in factory.__mro__ if klass not in bases)


def lookup(registry: Registry, name: str) -> list[DeclaredType]:
    """The types called ``name`` (a source and a sink may share one), or a
    :class:`ConfigError` suggesting the closest name."""
    found = declared_types(registry, name)
    if found:
        return found
    names = sorted({n for kind in OPTION_KINDS for n in registry.types[kind]})
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError("", f"no source, sink or transform type {name!r}; {hint}"
                      f"types: {', '.join(names)}")
