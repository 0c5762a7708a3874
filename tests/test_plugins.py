"""Plugin loading: entry points, broken and misspelled plugins, disabling, duplicates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from meepo_core import hookimpl, providers
from meepo_core.errors import ConfigError
from meepo_core.plugins import load_registry
from meepo_core.providers import provider_of, providers_from
from meepo_core.testing import run_meepo, write_config

BROKEN_DIST = str(Path(__file__).parent / "broken_plugin_dist")


def test_builtin_types_are_registered_like_any_plugin() -> None:
    registry = load_registry(entry_points=False)
    builtin = registry.plugins["builtin"]
    assert builtin.package == "meepo-core"
    assert builtin.provides["sink"] == ["print", "jsonl", "memory", "null"]
    assert builtin.provides["source"] == ["jsonl", "memory"]
    assert set(registry.types["checkpoint store"]) == {"file", "none"}


def test_broken_and_misspelled_plugins_are_reported_by_name_and_the_cli_survives(
    tmp_path: Path,
) -> None:
    write_config(tmp_path, {"demo": {"source": {"type": "memory"}, "sinks": [{"type": "null"}]}})
    result = run_meepo("plugins", cwd=tmp_path, env={"PYTHONPATH": BROKEN_DIST})
    assert result.returncode == 0, result.stderr
    lines = {line.split(" ")[0]: line for line in result.stdout.splitlines()}
    assert "BROKEN: ImportError: meepo_missing_dependency is not installed" in lines["broken"]
    assert "meepo-broken-example 1.0" in lines["broken"]
    assert (
        "BROKEN: unknown hook" in lines["misspelled"]
        and "meepo_register_sink" in lines["misspelled"]
    )
    assert lines["builtin"].startswith("builtin (meepo-core ")
    # the rest of the CLI still works
    assert run_meepo("list", cwd=tmp_path, env={"PYTHONPATH": BROKEN_DIST}).returncode == 0


def test_plugins_are_disabled_by_name(tmp_path: Path) -> None:
    write_config(tmp_path, {"demo": {"source": {"type": "memory"}, "sinks": [{"type": "null"}]}})
    result = run_meepo(
        "plugins",
        cwd=tmp_path,
        env={"PYTHONPATH": BROKEN_DIST, "MEEPO_DISABLE_PLUGINS": "broken, misspelled"},
    )
    lines = {line.split(" ")[0]: line for line in result.stdout.splitlines()}
    assert lines["broken"].endswith("disabled")
    assert lines["misspelled"].endswith("disabled")


class _Duplicate:
    @hookimpl
    def meepo_register_sinks(self, register: Any) -> None:
        register("print", object)


def test_duplicate_type_is_reported_and_the_first_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    module = types.ModuleType("meepo_dup_test_plugin")
    module.meepo_register_sinks = _Duplicate().meepo_register_sinks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "meepo_dup_test_plugin", module)
    registry = load_registry(["meepo_dup_test_plugin"], entry_points=False)
    assert "already registered by plugin 'builtin'" in (
        registry.plugins["meepo_dup_test_plugin"].error or ""
    )
    assert registry.types["sink"]["print"].plugin == "builtin"


def test_unknown_type_from_a_broken_plugin_says_it_failed_to_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(BROKEN_DIST)
    monkeypatch.setattr(providers, "_installed_providers",
                        lambda: {"kafka": "meepo-broken-example"})
    registry = load_registry()
    with pytest.raises(
        ConfigError, match="plugin 'broken' from meepo-broken-example failed to load: ImportError"
    ):
        registry.lookup("sink", "kafka", "sinks[0].type")


def test_providers_are_read_from_meepo_cores_extras() -> None:
    requirements = [
        "pluggy>=1.3", 'pytest>=8; extra == "test"', 'meepo-kafka; extra == "kafka"',
        "meepo-redis>=0.2 ; extra == 'redis'", 'meepo-core[test]; extra == "all"',
    ]
    found = providers_from(requirements)
    assert found == {"kafka": "meepo-kafka", "redis": "meepo-redis"}
    assert provider_of("kafka", found) == "meepo-kafka"
    assert provider_of("redis-stream", found) == "meepo-redis"  # the family before "-"
    assert provider_of("print", found) is None
    assert provider_of("webhook-x", found) is None


def test_an_uninstalled_first_party_type_says_which_package_to_install() -> None:
    """Read from this installation's meepo-core metadata (pip install -e . writes it)."""
    registry = load_registry(entry_points=False)
    with pytest.raises(ConfigError, match=r"unknown sink type 'redis-stream'; available: .*; "
                                          r"install it with: pip install meepo-redis$"):
        registry.lookup("sink", "redis-stream", "sinks[0].type")
    with pytest.raises(ConfigError) as raised:
        registry.lookup("sink", "no-such-type", "sinks[0].type")
    assert "pip install" not in str(raised.value)


def test_check_reports_each_problem(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {"p": {"source": {"type": "jsonl", "path": "missing.jsonl"}, "sinks": [{"type": "print"}]}},
    )
    result = run_meepo("check", "p", cwd=tmp_path)
    assert result.returncode == 1
    assert "source: FAILED" in result.stdout and "sinks[0] print: ok" in result.stdout
    assert "meepo: source: " in result.stderr and "missing.jsonl does not exist" in result.stderr


def test_list_shows_pipelines(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {"orders": {"source": {"type": "memory"}, "sinks": [{"type": "print"}, {"type": "null"}]}},
    )
    result = run_meepo("list", cwd=tmp_path)
    assert (
        result.stdout.strip()
        == "orders: memory -> print, null (checkpoint file:.meepo/orders.json)"
    )


def test_help_teaches_with_examples(tmp_path: Path) -> None:
    result = run_meepo("--help", cwd=tmp_path)
    assert result.returncode == 0
    for text in ("meepo run orders --once", "Exit codes", "[tool.meepo.pipelines.orders]"):
        assert text in result.stdout
    run_help = run_meepo("run", "--help", cwd=tmp_path).stdout
    assert "--once" in run_help and "SIGTERM" in run_help


class _LazyPlugin:
    @hookimpl
    def meepo_register_sinks(self, register: Any) -> None:
        register("lazy-null", "meepo_core.builtin.null_sink:NullSink")
        register("lazy-missing", "meepo_no_such_module:Sink")


def test_types_registered_by_import_path_load_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from meepo_core.builtin.null_sink import NullSink

    module = types.ModuleType("meepo_lazy_test_plugin")
    module.meepo_register_sinks = _LazyPlugin().meepo_register_sinks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "meepo_lazy_test_plugin", module)
    registry = load_registry(["meepo_lazy_test_plugin"], entry_points=False)
    assert registry.types["sink"]["lazy-null"].factory == "meepo_core.builtin.null_sink:NullSink"
    assert registry.lookup("sink", "lazy-null", "sinks[0].type") is NullSink
    with pytest.raises(
        ConfigError,
        match=r"sinks\[1\]\.type: type 'lazy-missing' of plugin "
        r"'meepo_lazy_test_plugin' failed to load \(ModuleNotFoundError",
    ):
        registry.lookup("sink", "lazy-missing", "sinks[1].type")


def test_builtin_cannot_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEEPO_DISABLE_PLUGINS", "builtin")
    registry = load_registry(entry_points=False)
    assert not registry.plugins["builtin"].disabled
    assert "print" in registry.types["sink"]


def test_a_type_of_a_disabled_plugin_says_the_plugin_is_disabled(tmp_path: Path) -> None:
    write_config(tmp_path, {"p": {"source": {"type": "memory"}, "sinks": [{"type": "kafka"}]}})
    result = run_meepo(
        "check", "p", cwd=tmp_path,
        env={"PYTHONPATH": BROKEN_DIST, "MEEPO_DISABLE_PLUGINS": "broken"},
    )
    assert result.returncode == 2
    assert "unknown sink type 'kafka'" in result.stderr
    assert "installed but disabled by MEEPO_DISABLE_PLUGINS: broken" in result.stderr


def test_check_without_a_checkpoint_says_where_the_first_run_starts(tmp_path: Path) -> None:
    write_config(tmp_path, {"p": {"source": {"type": "memory"}, "sinks": [{"type": "null"}]}})
    result = run_meepo("check", "p", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "none saved yet; the first run starts from the source's configured start" in (
        result.stdout)
    assert ": None" not in result.stdout


def test_lazy_exports_import_a_name_from_its_module_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "lazy_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from meepo_core import lazy_exports\n"
        "__getattr__ = lazy_exports(__name__, {'Thing': 'heavy'})\n")
    (package / "heavy.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import lazy_pkg  # type: ignore[import-not-found]

    assert "lazy_pkg.heavy" not in sys.modules
    assert lazy_pkg.Thing.__module__ == "lazy_pkg.heavy"
    with pytest.raises(AttributeError, match="has no attribute 'Other'"):
        lazy_pkg.Other  # noqa: B018
    for name in ("lazy_pkg", "lazy_pkg.heavy"):
        del sys.modules[name]


class _HalfBroken:
    """Registers a new sink, then a source whose name is taken: the whole plugin fails."""

    @hookimpl
    def meepo_register_sinks(self, register: Any) -> None:
        register("half_new_sink", object)

    @hookimpl
    def meepo_register_sources(self, register: Any) -> None:
        register("memory", object)


def test_a_plugin_that_fails_half_way_registers_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    module = types.ModuleType("meepo_half_broken_plugin")
    plugin = _HalfBroken()
    module.meepo_register_sinks = plugin.meepo_register_sinks  # type: ignore[attr-defined]
    module.meepo_register_sources = plugin.meepo_register_sources  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "meepo_half_broken_plugin", module)
    registry = load_registry(["meepo_half_broken_plugin"], entry_points=False)
    info = registry.plugins["meepo_half_broken_plugin"]
    assert "source type 'memory' is already registered by plugin 'builtin'" in (info.error or "")
    assert "half_new_sink" not in registry.types["sink"]
    assert info.provides == {}
    assert registry.types["source"]["memory"].plugin == "builtin"


HELLO_PLUGIN = '''
import click
from meepo_core import hookimpl


@hookimpl
def meepo_add_commands(cli):
    @cli.command()
    def hello():
        """Say hello from a local plugin."""
        click.echo("hello from a local plugin")
'''


def test_a_local_plugin_adds_its_commands(tmp_path: Path) -> None:
    (tmp_path / "meepo_hello_plugin.py").write_text(HELLO_PLUGIN, encoding="utf-8")
    write_config(
        tmp_path,
        {"demo": {"source": {"type": "memory"}, "sinks": [{"type": "null"}]}},
        plugins=["meepo_hello_plugin"],
    )
    result = run_meepo("hello", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from a local plugin"
    assert "hello" in run_meepo("--help", cwd=tmp_path).stdout
