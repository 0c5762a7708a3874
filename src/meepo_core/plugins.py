"""Loading plugins from entry points into a registry of source, sink, transform and store
types."""

from __future__ import annotations

import importlib
import operator
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigError
from .hookspecs import PROJECT
from .providers import provider_of

DISABLE_ENV = "MEEPO_DISABLE_PLUGINS"
#: Internal plugins, registered like external ones but never disabled: meepo needs them.
INTERNAL_PLUGINS = ("meepo_core.builtin.plugin",)

KINDS = ("source", "sink", "transform", "checkpoint store", "dead-letter store")
_HOOKS = {
    "source": "meepo_register_sources",
    "sink": "meepo_register_sinks",
    "transform": "meepo_register_transforms",
    "checkpoint store": "meepo_register_checkpoint_stores",
    "dead-letter store": "meepo_register_dead_letter_stores",
}


@dataclass
class PluginInfo:
    """One loaded, disabled or broken plugin, as ``meepo plugins`` shows it."""

    name: str
    package: str
    version: str
    provides: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    disabled: bool = False


@dataclass
class Registration:
    """A registered type. ``factory`` may be a ``"module:attribute"`` string (the attribute
    may be dotted: ``"module:Class.from_url"``), imported on first use, so that a plugin's
    heavy libraries load only for pipelines that use it."""

    name: str
    factory: Any
    plugin: str

    def resolve(self, key_path: str) -> Any:
        if isinstance(self.factory, str):
            module, _, attribute = self.factory.partition(":")
            try:
                self.factory = operator.attrgetter(attribute)(importlib.import_module(module))
            except (ImportError, AttributeError) as exc:
                raise ConfigError(
                    key_path,
                    f"type {self.name!r} of plugin {self.plugin!r} failed to load "
                    f"({type(exc).__name__}: {exc}); reinstall the plugin or its dependencies",
                ) from exc
        return self.factory


class Registry:
    """Every registered type by kind, plus the plugins that provided them.

    Build one with :func:`load_registry`; the CLI uses the cached :func:`registry`.
    """

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.types: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}

    def lookup(self, kind: str, name: str, key_path: str) -> Any:
        """The factory for ``name``, or a :class:`ConfigError` at ``key_path`` that lists the
        available types and says which package provides a missing one."""
        found = self.types[kind].get(name)
        if found is not None:
            return found.resolve(key_path)
        available = ", ".join(sorted(self.types[kind])) or "none"
        message = f"unknown {kind} type {name!r}; available: {available}"
        provider = provider_of(name)
        broken = [p for p in self.plugins.values() if p.error and provider in (p.package, None)]
        if provider and broken:
            message += (
                f"; plugin {broken[0].name!r} from {provider} failed to load: {broken[0].error}"
            )
        elif provider:
            message += f"; install it with: pip install {provider}"
        disabled = sorted(p.name for p in self.plugins.values() if p.disabled)
        if disabled:
            message += (
                f"; installed but disabled by {DISABLE_ENV}: {', '.join(disabled)} "
                "(remove the type's plugin from that variable to use it)"
            )
        raise ConfigError(key_path, message)

    def add_commands(self, cli: Any) -> None:
        self.manager.hook.meepo_add_commands(cli=cli)

    def _register_plugin(self, plugin: object) -> None:
        """Every type one plugin registers, of every kind, or none of them.

        The plugin's registration hooks write into a staging area; only when all of them
        ran without error (a duplicate name included) do its types join the registry, so
        a plugin that fails half-way is reported as broken and adds nothing.
        """
        name = self.manager.get_name(plugin) or "?"
        staged: list[tuple[str, str, Any]] = []

        def stage(kind: str) -> Callable[[str, Any], None]:
            def register(type_name: str, factory: Any) -> None:
                taken = self.types[kind].get(type_name)
                if taken is not None:
                    raise ValueError(
                        f"{kind} type {type_name!r} is already registered by plugin "
                        f"{taken.plugin!r}"
                    )
                if (kind, type_name) in {(k, n) for k, n, _ in staged}:
                    raise ValueError(f"{kind} type {type_name!r} is registered twice")
                staged.append((kind, type_name, factory))

            return register

        for kind in KINDS:
            hook = getattr(self.manager.hook, _HOOKS[kind])
            for impl in hook.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    impl.function(*([stage(kind)] if impl.argnames else []))
                except Exception as exc:  # a broken plugin must not take the CLI down
                    self.plugins[name].error = f"{_HOOKS[kind]} failed: {exc}"
                    return
        for kind, type_name, factory in staged:
            self.types[kind][type_name] = Registration(type_name, factory, name)
            self.plugins[name].provides.setdefault(kind, []).append(type_name)


def load_registry(extra_modules: Iterable[str] = (), *, entry_points: bool = True) -> Registry:
    """A fresh plugin manager with internal plugins, entry points (unless disabled by name
    in ``$MEEPO_DISABLE_PLUGINS``, comma-separated) and ``extra_modules`` (import paths)."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager)
    disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}

    def add(
        name: str, package: str, version: str, load: Callable[[], ModuleType],
        *, internal: bool = False,
    ) -> None:
        info = PluginInfo(name, package, version)
        registry.plugins[name] = info
        if name in disabled and not internal:
            info.disabled = True
            return
        try:
            manager.register(load(), name=name)
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"

    core_version = _version("meepo-core")
    for module in INTERNAL_PLUGINS:
        add("builtin", "meepo-core", core_version, _importer(module), internal=True)
    if entry_points:
        for ep in sorted(metadata.entry_points(group=PROJECT), key=lambda e: e.name):
            if ep.name in registry.plugins:
                continue
            dist = ep.dist
            add(ep.name, dist.name if dist else "?", dist.version if dist else "?", ep.load)
    for module in extra_modules:
        add(module, "(local)", "-", _importer(module))
    _check_pending(registry)
    # in loading order (built-ins first), so on a duplicate the first plugin wins
    for name in list(registry.plugins):
        plugin = manager.get_plugin(name)
        if plugin is not None:
            registry._register_plugin(plugin)
    return registry


def _importer(module: str) -> Callable[[], ModuleType]:
    return lambda: importlib.import_module(module)


def _check_pending(registry: Registry) -> None:
    """Unregister, and report by name, plugins whose hooks match no spec (a misspelling)."""
    while True:
        try:
            registry.manager.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = registry.manager.get_name(exc.plugin) or str(exc.plugin)
            registry.manager.unregister(exc.plugin)
            if name in registry.plugins:
                registry.plugins[name].error = f"unknown hook: {exc}"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


_cached: dict[tuple[str, ...], Registry] = {}


def registry(extra_modules: Iterable[str] = ()) -> Registry:
    """The process-wide registry, loaded once (lazily) per set of extra modules."""
    key = tuple(extra_modules)
    if key not in _cached:
        _cached[key] = load_registry(key)
    return _cached[key]


def import_local_plugins(modules: Iterable[str], base_dir: str) -> None:
    """Make ``[tool.meepo] plugins`` importable from the config file's directory."""
    if modules and base_dir not in sys.path:
        sys.path.insert(0, base_dir)
