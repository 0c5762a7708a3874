"""Exceptions with an exit code each, so the CLI can report them in one line."""

from __future__ import annotations


class MeepoError(Exception):
    """A failure meant for the user: its message is one line that says what to fix.

    ``exit_code`` is 1 for runtime failures; subclasses for usage and config use 2.
    """

    exit_code = 1


class ConfigError(MeepoError):
    """Invalid configuration. The message starts with the full key path, e.g.
    ``tool.meepo.pipelines.orders.sinks[1].url: required``."""

    exit_code = 2

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


class SourceError(MeepoError):
    """The source failed at runtime (unreachable server, purged binlog, lost privileges)."""


class SinkError(MeepoError):
    """A sink failed at runtime. ``retryable`` tells the runner whether backing off may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class CheckpointError(MeepoError):
    """A checkpoint could not be read or written (corrupt file, unreachable store)."""
