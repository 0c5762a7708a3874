"""The ``[tool.meepo.serve]`` table: where the service listens, its token, restart backoff."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meepo_core import ConfigError, Options

#: Environment variable holding the bearer token when the config names none.
DEFAULT_TOKEN_ENV = "MEEPO_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeConfig:
    """How ``meepo serve`` runs. ``token`` is read from the environment variable named by
    ``token_env`` and never shown (repr hides it)."""

    host: str = "127.0.0.1"
    port: int = 8080
    token_env: str = DEFAULT_TOKEN_ENV
    #: First wait before restarting a failed pipeline; doubles per failure up to the max.
    restart_backoff: float = 1.0
    restart_backoff_max: float = 60.0
    #: Seconds SIGTERM waits for every pipeline to finish its queued batches.
    stop_timeout: float = 15.0

    @property
    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None

    @classmethod
    def load(cls, path: Path) -> ServeConfig:
        """The ``serve`` table next to ``pipelines`` in the config file (all keys optional)."""
        prefix, table = read_config_file(path)
        raw = table.get("serve", {})
        key = f"{prefix}.serve" if prefix else "serve"
        if not isinstance(raw, dict):
            raise ConfigError(key, "must be a table")
        options = Options(raw, key, path.parent)
        d = cls()
        config = cls(
            host=options.string("host", d.host),
            port=options.integer("port", d.port, minimum=0),
            token_env=options.string("token_env", d.token_env),
            restart_backoff=options.number("restart_backoff", d.restart_backoff, minimum=0.01),
            restart_backoff_max=options.number(
                "restart_backoff_max", d.restart_backoff_max, minimum=0.01),
            stop_timeout=options.number("stop_timeout", d.stop_timeout, minimum=1),
        )
        options.done()
        return config


def read_config_file(path: Path) -> tuple[str, dict[str, Any]]:
    """``(prefix, table)``: the meepo table of a config file as written (not interpolated)
    and where it lives (``"tool.meepo"`` in a pyproject.toml, ``""`` in a meepo.toml)."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path}: invalid TOML: {exc}; fix the syntax there") from exc
    except OSError as exc:
        raise ConfigError("", f"cannot read config {path}: {exc.strerror}") from exc
    tool = data.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("meepo"), dict):
        return "tool.meepo", tool["meepo"]
    if path.name == "pyproject.toml":
        raise ConfigError("tool.meepo", f"missing in {path}; add [tool.meepo.pipelines.NAME]")
    return "", data


def pipeline_fingerprints(path: Path) -> tuple[str, dict[str, str]]:
    """``(prefix, {name: fingerprint})``: every pipeline of the config file with what its run
    depends on (its table as written and the ``plugins`` list), so a reload can tell which
    changed. The environment a table interpolates is the process's, fixed since its start."""
    prefix, table = read_config_file(path)
    pipelines = table.get("pipelines", {})
    if not isinstance(pipelines, dict):
        raise ConfigError(f"{prefix}.pipelines".lstrip("."), "must be a table")
    plugins = table.get("plugins", [])
    return prefix, {name: json.dumps([raw, plugins], sort_keys=True, default=str)
                    for name, raw in pipelines.items()}
