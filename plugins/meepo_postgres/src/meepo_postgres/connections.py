"""Opening psycopg2 connections: the replication stream's and the control connection.

psycopg 3 has no support for the streaming replication protocol, so both use psycopg2
(its ``LogicalReplicationConnection``). Every connection fixes the session settings that
decide how the server writes values as text, so that :mod:`meepo_postgres.values` can
read them whatever ``postgresql.conf`` or the role's defaults say.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg2
import psycopg2.extras

from meepo_core import SourceError

from .config import PostgresSettings

SESSION_SETTINGS = {
    "DateStyle": "ISO",
    "IntervalStyle": "iso_8601",
    "TimeZone": "UTC",
    "bytea_output": "hex",
    "extra_float_digits": "3",
    "client_encoding": "UTF8",
}
_OPTIONS = " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items())
CONNECT_TIMEOUT = 10
APPLICATION_NAME = "meepo"


def _connect(settings: PostgresSettings, **kwargs: Any) -> Any:
    """A new connection; raises psycopg2's ``OperationalError`` (see :func:`connect_error`)."""
    return psycopg2.connect(
        settings.dsn, options=_OPTIONS, application_name=APPLICATION_NAME,
        connect_timeout=CONNECT_TIMEOUT, **kwargs,
    )


def connect_control(settings: PostgresSettings) -> Any:
    """A plain autocommit connection for catalog queries, checks and slot management."""
    conn = _connect(settings)
    conn.autocommit = True
    return conn


def connect_replication(settings: PostgresSettings) -> Any:
    """A ``replication=database`` connection (a WAL sender on the server)."""
    return _connect(settings, connection_factory=psycopg2.extras.LogicalReplicationConnection)


#: libpq's "connection to server at ... failed: " before the server's own answer.
_SERVER_ANSWERED = re.compile(r"^connection to server (?:at|on) .*? failed: (?=FATAL:)")


def error_text(exc: BaseException) -> str:
    """The server's message without libpq's ``FATAL:``/``ERROR:`` prefix (nor, when the
    server answered, libpq's "connection to server ... failed:"), on one line."""
    text = _SERVER_ANSWERED.sub("", str(getattr(exc, "pgerror", None) or exc).strip())
    for prefix in ("FATAL:", "ERROR:"):
        text = text.removeprefix(prefix).strip()
    return " ".join(text.split()) or type(exc).__name__


def connect_error(settings: PostgresSettings, exc: BaseException) -> tuple[SourceError, bool]:
    """A one-line :class:`SourceError` for a failed connection attempt, and whether trying
    again later may succeed (the server is unreachable or starting up)."""
    text = error_text(exc)
    where = f"PostgreSQL at {settings.address}"
    lowered = text.lower()
    if "authentication failed" in lowered or "password" in lowered:
        return SourceError(
            f"cannot log in to {where} as {settings.user!r}: {text}; check the user and "
            f"password in {settings.dsn_key}"
        ), False
    if lowered.startswith("role ") and "does not exist" in lowered:
        return SourceError(
            f"cannot log in to {where} as {settings.user!r}: {text}; fix the user in "
            f"{settings.dsn_key}, or create the role (CREATE ROLE {settings.user} LOGIN "
            "REPLICATION PASSWORD '...')"
        ), False
    if "does not exist" in lowered and "database" in lowered:
        return SourceError(
            f"{where}: {text}; fix the database name in {settings.dsn_key}"
        ), False
    if "no pg_hba.conf entry" in lowered:
        return SourceError(
            f"{where} refused the connection: {text}; add a host line for this user and "
            "database to pg_hba.conf (logical replication needs no special line) and reload"
        ), False
    if "must be superuser or replication role" in lowered or "permission denied" in lowered:
        return SourceError(
            f"{where} refused replication to {settings.user!r}: {text}; run ALTER ROLE "
            f"{settings.user} WITH REPLICATION"
        ), False
    return SourceError(
        f"cannot reach {where}: {text}; check the host and port in {settings.dsn_key} and "
        "that the server is running"
    ), True
