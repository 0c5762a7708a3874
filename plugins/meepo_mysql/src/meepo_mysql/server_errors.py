"""MySQL/MariaDB error codes: which failures reconnecting may fix, and one-line messages.

Shared by the control connection, the dump reader and the snapshot reads.
"""

from __future__ import annotations

from typing import Any

import pymysql

from meepo_core import SourceError

from .config import MySQLSettings

#: Error codes after which reconnecting may help (network, server shutdown, killed thread).
RETRYABLE_CODES = frozenset({1053, 1077, 1152, 1158, 1159, 1160, 1161, 1317, 1927,
                             2002, 2003, 2006, 2013, 2055})
ER_ACCESS_DENIED = (1044, 1045, 1698)
ER_MASTER_FATAL_READING_BINLOG = 1236
#: MariaDB: "A slave with the same server_uuid/server_id is already connected".
ER_SLAVE_SAME_ID = 4052
ER_PARSE_ERROR = 1064


def error_code(exc: BaseException) -> int | None:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    return args[0] if args and isinstance(args[0], int) else None


def error_text(exc: BaseException) -> str:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2:
        return f"({args[0]}) {args[1]}"
    return str(exc) or type(exc).__name__


def connect_error(settings: MySQLSettings, exc: BaseException) -> SourceError:
    """A one-line :class:`SourceError` for a failed connection attempt."""
    code = error_code(exc)
    where = f"MySQL at {settings.address}"
    if code in ER_ACCESS_DENIED:
        return SourceError(
            f"cannot log in to {where} as {settings.user!r}: {error_text(exc)}; check the user "
            f"and password in {settings.dsn_key}"
        )
    if code in (2002, 2003) or isinstance(exc, OSError):
        return SourceError(
            f"cannot reach {where}: {error_text(exc)}; check the host and port in "
            f"{settings.dsn_key} and that the server is running"
        )
    return SourceError(f"cannot connect to {where}: {error_text(exc)}")


def is_retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a lost or refused connection that reconnecting may fix."""
    if isinstance(exc, pymysql.err.OperationalError | pymysql.err.InternalError):
        code = error_code(exc)
        return code in RETRYABLE_CODES or code is None or code == 0
    return isinstance(exc, pymysql.err.InterfaceError | ConnectionError | TimeoutError)
