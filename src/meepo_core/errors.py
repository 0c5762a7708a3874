"""Exceptions with an exit code each, so the CLI can report them in one line, and
:func:`describe_error`, the one-line form of any exception."""

from __future__ import annotations

import functools


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


@functools.singledispatch
def describe_error(exc: BaseException) -> str:
    """``exc`` in one line, for logs, error messages and dead letters: ``"Type: first line
    of the message"``, or just ``"Type"`` when the message is empty.

    Plugins whose driver raises errors with a better one-line form (an error code, a
    server's SQLSTATE) register it for the driver's base exception class, and every caller
    (the core's retry lines, dead letters, the plugin itself) then uses it::

        @describe_error.register
        def _(exc: pymysql.err.MySQLError) -> str:
            return error_text(exc)

    The most specific registered class of ``exc`` wins (``functools.singledispatch``).
    """
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
