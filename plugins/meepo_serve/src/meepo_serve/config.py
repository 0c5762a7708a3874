"""The ``[tool.meepo.serve]`` table: where the service listens, its token, restart backoff."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

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
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        prefix = "tool.meepo" if "meepo" in data.get("tool", {}) else ""
        table = data["tool"]["meepo"] if prefix else data
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
