"""The ``[tool.meepo.serve]`` table: where the service listens, its token, restart backoff."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meepo_core import ConfigError, Options, OptionSpec

#: Environment variable holding the bearer token when the config names none.
DEFAULT_TOKEN_ENV = "MEEPO_SERVE_TOKEN"

HOST = OptionSpec("host", "string", "127.0.0.1", "The address to listen on; `--host` overrides.")
PORT = OptionSpec("port", "integer", 8080,
                  "The port to listen on; `--port` overrides; `0` picks a free port.", minimum=0)
TOKEN_ENV = OptionSpec("token_env", "string", DEFAULT_TOKEN_ENV,
                       "The environment variable holding the bearer token.")
RESTART_BACKOFF = OptionSpec(
    "restart_backoff", "number", 1.0,
    "Seconds before restarting a failed pipeline the first time; doubled per failure.",
    minimum=0.01)
RESTART_BACKOFF_MAX = OptionSpec("restart_backoff_max", "number", 60.0,
                                 "The longest wait before a restart, in seconds.", minimum=0.01)
STOP_TIMEOUT = OptionSpec(
    "stop_timeout", "number", 15.0,
    "Seconds SIGTERM waits at most for all pipelines together to finish their queued "
    "batches.", minimum=1)
#: The keys of ``[tool.meepo.serve]``.
SERVE_OPTIONS = (HOST, PORT, TOKEN_ENV, RESTART_BACKOFF, RESTART_BACKOFF_MAX, STOP_TIMEOUT)


@dataclass(frozen=True)
class ServeConfig:
    """How ``meepo serve`` runs. ``token`` is read from the environment variable named by
    ``token_env`` and never shown (repr hides it)."""

    host: str = HOST.default
    port: int = PORT.default
    token_env: str = TOKEN_ENV.default
    #: First wait before restarting a failed pipeline; doubles per failure up to the max.
    restart_backoff: float = RESTART_BACKOFF.default
    restart_backoff_max: float = RESTART_BACKOFF_MAX.default
    #: Seconds SIGTERM waits for every pipeline to finish its queued batches.
    stop_timeout: float = STOP_TIMEOUT.default

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
        config = cls(
            host=options.string(HOST),
            port=options.integer(PORT),
            token_env=options.string(TOKEN_ENV),
            restart_backoff=options.number(RESTART_BACKOFF),
            restart_backoff_max=options.number(RESTART_BACKOFF_MAX),
            stop_timeout=options.number(STOP_TIMEOUT),
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
