"""The hooks a meepo plugin implements. Every hook is optional.

A plugin is a module with functions decorated by :data:`hookimpl`, registered through the
``meepo`` entry-point group::

    [project.entry-points.meepo]
    webhook = "meepo_webhook.plugin"

Registration hooks receive a ``register`` callable; the core records which plugin
provides which type, reports duplicates, and names the package to install when a config
asks for a type nobody registered. Events never travel through pluggy: sinks get whole
batches through :meth:`meepo_core.Sink.apply`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import pluggy

if TYPE_CHECKING:
    import click

    from .checkpoints import CheckpointStore
    from .dead_letters import DeadLetterStore
    from .sink import Sink
    from .source import Source
    from .transforms import Transform

#: One name for the pluggy project, the hook prefix and the entry-point group.
PROJECT = "meepo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

T = TypeVar("T")

#: ``factory(url, pipeline_name, base_dir)`` for a checkpoint store URL scheme.
CheckpointStoreFactory: TypeAlias = "Callable[[str, str, Path], CheckpointStore]"
#: ``factory(url, pipeline_name, base_dir)`` for a dead-letter store URL scheme.
DeadLetterStoreFactory: TypeAlias = "Callable[[str, str, Path], DeadLetterStore]"
#: What a registration passes: the class (or factory) itself, or a lazy
#: ``"package.module:Name"`` import string (the name may be dotted: ``"module:Class.from_url"``).
Lazy: TypeAlias = "T | str"


@hookspec
def meepo_register_sources(register: Callable[[str, Lazy[type[Source]]], None]) -> None:
    """Call ``register(type_name, SourceClass)`` for each source type the plugin provides.

    ``type_name`` is what users write in ``source = { type = "..." }``. Instead of the class,
    a ``"package.module:ClassName"`` string defers its import until a pipeline uses the
    type; this keeps ``meepo`` fast to start when many plugins are installed. The same
    holds for every ``register`` below.
    """


@hookspec
def meepo_register_sinks(register: Callable[[str, Lazy[type[Sink]]], None]) -> None:
    """Call ``register(type_name, SinkClass)`` for each sink type the plugin provides."""


@hookspec
def meepo_register_transforms(register: Callable[[str, Lazy[type[Transform]]], None]) -> None:
    """Call ``register(type_name, TransformClass)`` for each transform type the plugin
    provides: what users write in ``transforms = [{ type = "..." }]`` of a pipeline or a
    sink. The class subclasses :class:`meepo_core.Transform`."""


@hookspec
def meepo_register_checkpoint_stores(
    register: Callable[[str, Lazy[CheckpointStoreFactory]], None],
) -> None:
    """Call ``register(scheme, factory)`` for each checkpoint URL scheme provided.

    ``checkpoint = "redis://cache:6379/0"`` picks the factory registered for ``redis``;
    the factory returns a :class:`~meepo_core.checkpoints.CheckpointStore` for one pipeline.
    """


@hookspec
def meepo_register_dead_letter_stores(
    register: Callable[[str, Lazy[DeadLetterStoreFactory]], None],
) -> None:
    """Call ``register(scheme, factory)`` for each dead-letter URL scheme provided
    (``dead_letter = "file:..."`` is built in)."""


@hookspec
def meepo_add_commands(cli: click.Group) -> None:
    """Add subcommands to the ``meepo`` CLI, e.g. ``cli.add_command(es_group)`` for
    ``meepo es backfill``. Use the group's name for the plugin to avoid clashes."""
