"""The control connection: server flavor, preflight checks and binlog coordinates."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from typing import Any

import pymysql
import pymysql.cursors

from meepo_core import SourceError

from . import compat
from .config import SYSTEM_SCHEMAS, MySQLSettings
from .positions import BinlogPosition
from .server_errors import ER_PARSE_ERROR, connect_error, error_code, error_text, is_retryable

log = logging.getLogger("meepo.mysql")


class ControlConnection:
    """A plain connection for queries (not the dump). Reconnects once when it was lost."""

    def __init__(self, settings: MySQLSettings) -> None:
        self.settings = settings
        self._conn: Any = None
        self._flavor: str | None = None
        self.version = ""

    def connect(self) -> Any:
        if self._conn is None:
            try:
                self._conn = pymysql.connect(autocommit=True, **self.settings.connection_settings())
            except (pymysql.err.MySQLError, OSError) as exc:
                raise connect_error(self.settings, exc) from exc
        return self._conn

    def sibling_settings(self) -> dict[str, Any]:
        """pymysql arguments for another connection to the same server (the dump, the
        snapshot reads): as this one's, with its TLS outcome (see
        :func:`meepo_mysql.compat.same_tls`)."""
        return {**self.settings.connection_settings(), **compat.same_tls(self.connect())}

    def query(self, sql: str, *args: Any, dict_rows: bool = False) -> list[Any]:
        for attempt in (1, 2):
            conn = self.connect()
            cursor_class = pymysql.cursors.DictCursor if dict_rows else pymysql.cursors.Cursor
            try:
                with conn.cursor(cursor_class) as cur:
                    cur.execute(sql, args or None)
                    return list(cur.fetchall())
            except pymysql.err.OperationalError as exc:
                if attempt == 2 or not is_retryable(exc):
                    raise
                self.close()
        raise AssertionError("unreachable")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @property
    def flavor(self) -> str:
        """``"mariadb"`` or ``"mysql"``."""
        if self._flavor is None:
            self.version = str(self.query("SELECT VERSION()")[0][0])
            self._flavor = "mariadb" if "mariadb" in self.version.lower() else "mysql"
        return self._flavor

    def variables(self) -> dict[str, str]:
        rows = self.query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', "
            "'binlog_row_image', 'binlog_row_metadata', 'binlog_row_value_options', 'gtid_mode', "
            "'binlog_transaction_compression')"
        )
        return {str(name).lower(): str(value) for name, value in rows}

    # -- coordinates ----------------------------------------------------------------------
    def current_position(self) -> BinlogPosition:
        """The end of the binlog now, with the GTID state where the server keeps one."""
        if self.flavor == "mariadb":
            rows = self.query("SHOW MASTER STATUS")
            gtid = ""  # the caller asks BINLOG_GTID_POS for exactly this file/pos
        else:
            try:  # MySQL 8.2+ (8.4 removed SHOW MASTER STATUS)
                rows = self.query("SHOW BINARY LOG STATUS")
            except pymysql.err.ProgrammingError as exc:
                if error_code(exc) != ER_PARSE_ERROR:
                    raise
                rows = self.query("SHOW MASTER STATUS")
            gtid = str(rows[0][4] or "").replace("\n", "") if rows and len(rows[0]) > 4 else ""
        if not rows:
            raise SourceError(
                f"the binary log is off on MySQL at {self.settings.address}; add log_bin = "
                "binlog and server_id = 1 under [mysqld] in my.cnf and restart it"
            )
        return BinlogPosition(str(rows[0][0]), int(rows[0][1]), gtid or None)

    def binary_logs(self) -> list[str]:
        return list(self.binary_log_sizes())

    def binary_log_sizes(self) -> dict[str, int]:
        """The binlog files the server still has, oldest first, with their sizes."""
        return {str(row[0]): int(row[1]) for row in self.query("SHOW BINARY LOGS")}

    def missing_position(self, position: BinlogPosition) -> str | None:
        """Why the server cannot stream from ``position`` (a file/pos), or None when it
        can: the file was purged or never existed, or the offset lies past its end."""
        if not position.file:
            return None
        try:
            files = self.binary_log_sizes()
        except pymysql.err.MySQLError:  # no BINLOG MONITOR: preflight says what to GRANT
            return None
        if position.file not in files:
            oldest = next(iter(files), None)
            return (f"binlog {position.file} is not on the server (it was purged, or never "
                    f"existed); the oldest it has is {oldest or 'none'}")
        if position.pos > files[position.file]:
            return (f"binlog {position.file} has {files[position.file]} bytes, fewer than the "
                    f"offset {position.pos}")
        return None

    def mariadb_gtid_at(self, file: str, pos: int) -> str | None:
        """MariaDB's GTID state at ``file:pos`` (``BINLOG_GTID_POS``; ``""`` when no GTID
        was ever logged), or None when the server cannot tell."""
        try:
            rows = self.query("SELECT BINLOG_GTID_POS(%s, %s)", file, pos)
        except pymysql.err.MySQLError as exc:
            log.debug("BINLOG_GTID_POS(%s, %s) failed: %s", file, pos, error_text(exc))
            return None
        value = rows[0][0] if rows else None
        return None if value is None else str(value)

    def mariadb_extended_types(self, schema: str, table: str) -> dict[str, str]:
        """Columns of ``schema.table`` whose type the binlog does not name: JSON (MariaDB
        stores it as LONGTEXT with a ``json_valid`` check), INET4, INET6 and UUID (stored
        as BINARY), and temporal columns with fractional seconds in MariaDB 5.3's format
        (written when ``mysql56_temporal_format`` is OFF), whose binlog form leaves their
        size out. ``{column: "json" | "inet4" | "inet6" | "uuid" | "mariadb53"}``."""
        found = self._extended_types("TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                                     "CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s", schema, table)
        return found.get((schema, table), {})

    def mariadb_extended_types_in(
        self, schemas: Sequence[str] | None
    ) -> dict[tuple[str, str], dict[str, str]]:
        """:meth:`mariadb_extended_types` of every table of ``schemas`` (None: of every
        schema but the system ones) that has such columns, by ``(schema, table)``."""
        if schemas is None:
            system = ", ".join(f"'{name}'" for name in sorted(SYSTEM_SCHEMAS))
            return self._extended_types(f"TABLE_SCHEMA NOT IN ({system})",
                                        f"CONSTRAINT_SCHEMA NOT IN ({system})")
        if not schemas:
            return {}
        marks = ", ".join(["%s"] * len(schemas))
        return self._extended_types(f"TABLE_SCHEMA IN ({marks})",
                                    f"CONSTRAINT_SCHEMA IN ({marks})", *schemas)

    def _extended_types(self, columns_where: str, checks_where: str, *args: str
                        ) -> dict[tuple[str, str], dict[str, str]]:
        found: dict[tuple[str, str], dict[str, str]] = {}
        for schema, table, name, kind, column_type in self.query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM "
            f"information_schema.COLUMNS WHERE {columns_where} AND (DATA_TYPE IN ('inet4', "
            "'inet6', 'uuid') OR (COLUMN_TYPE LIKE '%%mariadb-5.3%%' AND "
            "DATETIME_PRECISION > 0))", *args,
        ):
            found.setdefault((str(schema), str(table)), {})[str(name)] = (
                "mariadb53" if "mariadb-5.3" in str(column_type) else str(kind).lower())
        for schema, table, name, clause in self.query(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM "
            f"information_schema.CHECK_CONSTRAINTS WHERE {checks_where} AND LEVEL = 'Column'",
            *args,
        ):
            if re.fullmatch(r"\s*json_valid\(`?" + re.escape(str(name)) + r"`?\)\s*",
                            str(clause)):
                found.setdefault((str(schema), str(table)), {})[str(name)] = "json"
        return found

    def collations(self) -> dict[int, str]:
        """``{collation id: character set}`` of every collation the server has."""
        try:  # MariaDB 10.10+ lists the UCA 14.0.0 collations (ids from 2048) only here
            rows = self.query("SELECT ID, CHARACTER_SET_NAME FROM "
                              "information_schema.COLLATION_CHARACTER_SET_APPLICABILITY")
        except pymysql.err.MySQLError:
            rows = self.query("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS")
        return {int(cid): str(name) for cid, name in rows}

    def logs_cascades(self) -> bool:
        """Whether the server writes rows changed by foreign-key cascades to the binlog:
        MySQL 9.6+ does, unless ``innodb_native_foreign_keys`` is ON; MariaDB does not."""
        if self.flavor != "mysql":
            return False
        numbers = re.match(r"(\d+)\.(\d+)", self.version)
        if numbers is None or (int(numbers[1]), int(numbers[2])) < (9, 6):
            return False
        rows = self.query("SHOW GLOBAL VARIABLES LIKE 'innodb_native_foreign_keys'")
        return not rows or str(rows[0][1]).upper() not in ("ON", "1")

    # -- preflight ------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        """One line per problem, each naming the setting and the fix; empty when ready."""
        problems: list[str] = []
        found = self.variables()
        mycnf = "under [mysqld] in my.cnf"
        if found.get("log_bin", "OFF").upper() not in ("ON", "1"):
            problems.append(
                "log_bin is OFF: the binary log is disabled; add log_bin = binlog and "
                f"server_id = 1 {mycnf} and restart the server"
            )
        for name, wanted in (("binlog_format", "ROW"), ("binlog_row_image", "FULL"),
                             ("binlog_row_metadata", "FULL")):
            value = found.get(name)
            if value is None:
                problems.append(
                    f"{name} is not supported by this server ({self.version}); meepo needs "
                    "MariaDB 10.5+ or MySQL 8.0.14+ for column names in the binlog; upgrade it"
                )
            elif value.upper() != wanted:
                problems.append(
                    f"{name} is {value}, meepo needs {wanted}: run SET GLOBAL {name} = "
                    f"'{wanted}' and add {name} = {wanted} {mycnf}"
                )
        options = found.get("binlog_row_value_options", "")
        if "PARTIAL_JSON" in options.upper():
            problems.append(
                f"binlog_row_value_options is {options}, which logs JSON updates as partial "
                "diffs: run SET GLOBAL binlog_row_value_options = '' and add "
                f"binlog_row_value_options = '' {mycnf}"
            )
        # MariaDB's log_bin_compress events are decoded; MySQL's compressed transaction
        # payloads (zstd) are not.
        name = "binlog_transaction_compression"
        if found.get(name, "OFF").upper() in ("ON", "1"):
            problems.append(
                f"{name} is ON, and compressed transaction payloads cannot be decoded: run "
                f"SET GLOBAL {name} = OFF and add {name} = OFF {mycnf}"
            )
        problems += self._privilege_problems()
        return problems

    def _privilege_problems(self) -> list[str]:
        account = str(self.query("SELECT CURRENT_USER()")[0][0])
        user, _, host = account.rpartition("@")
        grantee = f"'{user}'@'{host}'"
        grants = " ".join(str(row[0]).upper() for row in self.query("SHOW GRANTS"))
        global_grants = " ".join(
            re.findall(r"GRANT (.*?) ON \*\.\* TO", grants)
        )
        if "ALL PRIVILEGES" in global_grants or "SUPER" in global_grants.split(", "):
            return []
        has_roles = bool(re.search(r"GRANT [`'][^`']+[`'](@[`'][^`']*[`'])? TO", grants))
        if self.flavor == "mariadb":
            needed = {"REPLICATION SLAVE": ("REPLICATION SLAVE",),
                      "BINLOG MONITOR": ("BINLOG MONITOR", "REPLICATION CLIENT")}
        else:
            needed = {"REPLICATION SLAVE": ("REPLICATION SLAVE",),
                      "REPLICATION CLIENT": ("REPLICATION CLIENT",)}
        missing = [name for name, aliases in needed.items()
                   if not any(alias in global_grants for alias in aliases)]
        if not missing or has_roles:  # privileges through roles cannot be read reliably here
            return []
        return [
            f"user {grantee} lacks the {' and '.join(missing)} privilege"
            f"{'s' if len(missing) > 1 else ''} needed to read the binlog: run GRANT "
            f"{', '.join(needed)} ON *.* TO {grantee}"
        ]
