"""The dump's lifecycle: open it at a transaction boundary, tell fatal errors from lost
connections, and pace reconnects.

:class:`DumpReader` opens a :class:`~meepo_mysql.dump_connection.DumpConnection` at a
position (file/pos, or the GTID state in GTID mode). When a connection drops, stalls
(nothing, not even a heartbeat, for 2.5 heartbeat periods) or the server restarts, the
stream asks :meth:`DumpReader.retry_delay` how long to wait before opening the next one:
exponential backoff from 0.5 s to 30 s, and a :class:`~meepo_core.SourceError` after
``reconnect_attempts`` consecutive failures. A connection that delivered a transaction
or lasted 30 s was healthy and resets the count. Errors no reconnect can fix (a purged
binlog, missing privileges) raise at once, naming the fix.
"""

from __future__ import annotations

import contextlib
import logging
import socket

import pymysql

from meepo_core import SourceError, backoff_delay, describe_error

from .config import MySQLSettings
from .control_connection import ControlConnection
from .dump_connection import DumpConnection
from .positions import BinlogPosition
from .server_errors import (
    ER_ACCESS_DENIED,
    ER_MASTER_FATAL_READING_BINLOG,
    ER_SLAVE_SAME_ID,
    error_code,
    error_text,
    is_retryable,
)

log = logging.getLogger("meepo.mysql")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 30.0  # seconds a connection must last to reset the reconnect budget
ER_SPECIFIC_ACCESS_DENIED = 1227


class Stalled(Exception):
    """Neither an event nor a heartbeat arrived for too long."""


class ConnectionEnded(Exception):
    """The server ended a blocking dump (it shuts down)."""


#: What a reconnect may fix.
LOST = (Stalled, ConnectionEnded, OSError, EOFError, pymysql.err.MySQLError)


class DumpReader:
    """Opens dumps for one source and decides what happens when one breaks."""

    def __init__(self, settings: MySQLSettings, control: ControlConnection, server_id: int,
                 *, once: bool, gtid_mode: bool, wake: socket.socket | None = None) -> None:
        self.settings = settings
        self.wake = wake
        self.control = control
        self.server_id = server_id
        self.once = once
        self.gtid_mode = gtid_mode
        self.failures = 0
        self.current: DumpConnection | None = None

    def open(self, position: BinlogPosition) -> DumpConnection:
        """A dump starting at ``position`` (a transaction boundary)."""
        dump = self.current = DumpConnection(
            self.control.sibling_settings(), self.server_id,
            heartbeat=self.settings.heartbeat, blocking=not self.once, wake=self.wake,
        )
        if self.gtid_mode and position.gtid is not None:
            if self.control.flavor == "mariadb":
                dump.open(mariadb_gtid=position.gtid)
            else:
                dump.open(mysql_gtid=position.gtid)
        else:
            # MariaDB accepts the plain COM_BINLOG_DUMP at file/pos too.
            dump.open(file=position.file, pos=position.pos)
        return dump

    def close(self) -> None:
        dump, self.current = self.current, None
        if dump is not None:
            with contextlib.suppress(Exception):
                dump.close()

    def shutdown(self) -> None:
        """Unblock a waiting read (from another thread)."""
        dump = self.current
        if dump is not None:
            dump.shutdown()

    def raise_if_fatal(self, exc: BaseException, resume: BinlogPosition) -> None:
        """Raise a :class:`SourceError` for errors no reconnect can fix."""
        if not isinstance(exc, pymysql.err.MySQLError):
            return
        code = error_code(exc)
        where = f"MySQL at {self.settings.address}"
        if code == ER_SLAVE_SAME_ID or "same server_uuid/server_id" in error_text(exc):
            raise SourceError(
                f"another replica connected to {where} with this pipeline's server_id "
                f"{self.server_id}, and the server dropped this one ({error_text(exc)}); set "
                f"{self.settings.key_path}.server_id to a number no other replica of the "
                "server uses, or remove it: meepo then derives one from the host, the config "
                "file and the pipeline name"
            ) from exc
        if code == ER_MASTER_FATAL_READING_BINLOG:
            text = error_text(exc)
            if "purged" in text.lower() or "could not find" in text.lower():
                raise SourceError(
                    f"{where} no longer has the binlog to resume from {resume.to_json()} (it "
                    f"was purged): {text}; to recover, delete the checkpoint and backfill the "
                    "sinks, or delete it and set start (\"latest\", \"FILE:POS\" or a GTID set)"
                ) from exc
            raise SourceError(f"{where} refused to stream from {resume.to_json()}: {text}") \
                from exc
        if code in ER_ACCESS_DENIED or code == ER_SPECIFIC_ACCESS_DENIED:
            raise SourceError(
                f"{where} denied the binlog stream to {self.settings.user!r}: "
                f"{error_text(exc)}; run meepo check for the GRANT to apply"
            ) from exc
        if not is_retryable(exc):
            raise SourceError(f"binlog stream from {where} failed: {error_text(exc)}") from exc

    def retry_delay(self, error: BaseException, resume: BinlogPosition, *, healthy: bool) -> float:
        """Seconds to wait before the next attempt, logged; raises when out of attempts."""
        self.failures = 1 if healthy else self.failures + 1
        if self.failures > self.settings.reconnect_attempts:
            raise SourceError(
                f"lost the binlog stream from MySQL at {self.settings.address} and "
                f"{self.failures - 1} reconnects failed: {describe_error(error)}; rerun to resume "
                f"from {resume.to_json()}"
            ) from error
        delay = backoff_delay(self.failures, BACKOFF_FIRST, BACKOFF_MAX)
        log.warning(
            "binlog stream from %s lost (%s); reconnecting in %.1fs from %s (attempt %d of %d)",
            self.settings.address, describe_error(error), delay, resume.to_json(), self.failures,
            self.settings.reconnect_attempts,
        )
        return delay


# The core's one-line error texts use the server's own words for its errors.
describe_error.register(pymysql.err.MySQLError, error_text)
