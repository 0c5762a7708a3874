"""Reading pipelines from ``[tool.meepo.pipelines.NAME]`` in pyproject.toml or meepo.toml."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .options import Options

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class MeepoConfig:
    """A parsed config file: its pipelines (raw, interpolated) and where keys live."""

    path: Path
    prefix: str  # "tool.meepo" for pyproject.toml, "" for a meepo.toml with top-level keys
    pipelines: dict[str, dict[str, Any]]
    plugins: list[str]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def pipeline_path(self, name: str) -> str:
        return ".".join(p for p in (self.prefix, "pipelines", name) if p)

    def pipeline_options(self, name: str) -> Options:
        """Options of pipeline ``name``; a missing name lists the configured ones."""
        if name not in self.pipelines:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise ConfigError(
                self.pipeline_path(name),
                f"no such pipeline in {self.path}; configured pipelines: {known}",
            )
        return Options(self.pipelines[name], self.pipeline_path(name), self.base_dir)


def find_config(start: Path | None = None) -> Path:
    """The nearest ``meepo.toml``, or ``pyproject.toml`` with a ``[tool.meepo]`` table,
    in ``start`` or its parents."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        meepo_toml = directory / "meepo.toml"
        if meepo_toml.is_file():
            return meepo_toml
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and "meepo" in _read_toml(pyproject).get("tool", {}):
            return pyproject
    raise ConfigError(
        "",
        f"no pyproject.toml with [tool.meepo.pipelines.NAME] found in {here} or its parents; "
        "create one or pass --config FILE",
    )


def load_config(path: Path | None = None) -> MeepoConfig:
    """Parse ``path`` (or the nearest config) and interpolate ``${ENV_VAR}`` in strings.

    ``${VAR:-default}`` gives a default; an unset variable without one is a config error
    naming the key that uses it.
    """
    path = (path or find_config()).resolve()
    data = _read_toml(path)
    if "tool" in data and "meepo" in data["tool"]:
        table, prefix = data["tool"]["meepo"], "tool.meepo"
    elif path.name != "pyproject.toml":
        table, prefix = data, ""
    else:
        raise ConfigError("tool.meepo", f"missing in {path}; add [tool.meepo.pipelines.NAME]")
    if not isinstance(table, dict):
        raise ConfigError(prefix, "must be a table")
    options = Options(table, prefix, path.parent)
    pipelines = options.table("pipelines", {})
    plugins = options.string_list("plugins", [])
    for name, pipeline in pipelines.items():
        if not isinstance(pipeline, dict):
            raise options.error(f"pipelines.{name}", "must be a table")
    interpolated = _interpolate(pipelines, ".".join(p for p in (prefix, "pipelines") if p))
    return MeepoConfig(path, prefix, interpolated, plugins)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path}: invalid TOML: {exc}; fix the syntax there") from exc
    except OSError as exc:
        raise ConfigError("", f"cannot read config {path}: {exc.strerror}") from exc


def _interpolate(value: Any, path: str) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name, default)
            if found is None:
                raise ConfigError(
                    path,
                    f"environment variable {name} is not set; export it or write "
                    f"${{{name}:-default}}",
                )
            return found

        return _ENV_PATTERN.sub(replace, value)
    if isinstance(value, dict):
        return {key: _interpolate(item, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, f"{path}[{index}]") for index, item in enumerate(value)]
    return value
