"""Table definitions seen in the binlog, each turned once into a :class:`TablePlan`.

A table-map event precedes every statement's rows events. Its bytes after the table id
determine the definition completely, so plans are kept by those bytes: repeated
statements cost one dictionary lookup, and a table that changed (ALTER TABLE) has other
bytes and gets a new plan. A plan holds the row decoder (meepo's generated one, or the
library's as a reference), the event builder and, for the parent of a cascading foreign
key, the watch that reports cascades. Tables that are neither followed nor watched get
no plan, so their rows are never decoded. MariaDB's JSON, INET and UUID columns, which
those bytes do not show, come from the schema history as of the stream's position
(:mod:`meepo_mysql.schema_history`); every DDL statement clears the plans.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql

from meepo_core import PipelineContext, SourceError

from . import cascades
from . import tablemap as tm
from .binlog import FormatDescription
from .builder import RowBuilder
from .config import MySQLSettings
from .control_connection import ControlConnection
from .definitions import map_definition, read_definition
from .reference import LibraryRows, LibraryTables
from .rows import RowsBody, TableDecoder, UnsupportedColumn, column_spec
from .schema_history import Kinds, SchemaHistory, followed_state
from .server_errors import error_text

log = logging.getLogger("meepo.mysql")

#: (rows body, the whole packet, the binlog's format) -> images or (before, after) pairs
Decode = Callable[[RowsBody, bytes, FormatDescription], list[Any]]

#: Distinct definitions remembered; past this the memo starts over.
MAX_PLANS = 4096


@dataclass
class TablePlan:
    """What to do with the rows of one table definition."""

    table: tm.TableMap
    decode: Decode
    builder: RowBuilder | None  # None: not followed, only watched for cascades
    watch: cascades.CascadeWatch | None


class Tables:
    """Plans by definition, and the server facts they need (collations, MariaDB's
    extended types, cascading foreign keys), looked up once each."""

    def __init__(self, settings: MySQLSettings, control: ControlConnection,
                 context: PipelineContext, *, reference: bool, start: Any = None) -> None:
        self.settings = settings
        self.control = control
        self.context = context
        self.mariadb = control.flavor == "mariadb"
        self.library = LibraryTables(control.flavor) if reference else None
        self._plans: dict[bytes, TablePlan | None] = {}
        self._collations: dict[int, str] | None = None
        #: MariaDB's JSON, INET and UUID columns as of the stream's position, from the
        #: checkpoint ``start`` or the server (None on MySQL, whose binlog names them).
        self.history = SchemaHistory.resumed(self._read_kinds, start, self._all_kinds) \
            if self.mariadb else None
        self._no_pk_warned: set[str] = set()
        self.cascades: dict[str, list[cascades.Cascade]] = {}  # by parent table

    def load_cascades(self) -> list[cascades.Cascade]:
        """Cascading foreign keys into followed tables (none where the server logs the
        cascaded rows itself)."""
        self.cascades = {}
        found = cascades.find(self.control, self.settings.filter)
        for cascade in found:
            self.cascades.setdefault(cascade.parent, []).append(cascade)
        return found

    def schema_changed(self, statement: str, default_schema: str) -> None:
        """A DDL statement (in commit order): apply it to the history of JSON, INET and
        UUID columns, and forget what may have changed without changing table maps (those
        columns, foreign keys)."""
        self._plans.clear()
        if self.history is not None:
            self.history.apply(statement, default_schema)
        self.load_cascades()

    def plan(self, definition: bytes) -> TablePlan | None:
        """The plan for a table-map body after its table id; None: ignore its rows."""
        try:
            return self._plans[definition]
        except KeyError:
            pass
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        plan = self._plans[definition] = self._build(definition)
        return plan

    def _build(self, definition: bytes) -> TablePlan | None:
        schema, table = tm.table_names(definition)
        follows = self.settings.filter.follows(schema, table)
        parent_of = self.cascades.get(f"{schema}.{table}")
        if not follows and not parent_of:
            return None
        mapped = tm.parse_table_map(definition, self.mariadb)
        if not mapped.has_names:
            raise SourceError(
                f"{mapped.qualified}: the binlog carries no column names; run SET GLOBAL "
                "binlog_row_metadata = 'FULL' on the server (events written before that "
                "cannot be decoded by name: backfill the table)"
            )
        pk = tuple(mapped.names[i] for i in mapped.primary_key)
        # a table without a key is keyed by its whole row: the transforms' drops keep it
        hidden = self.settings.filter.hidden_columns(schema, table, mapped.names,
                                                     pk or mapped.names) \
            if follows else frozenset()
        self._refuse_hidden_key(mapped, hidden, pk)
        watch = cascades.CascadeWatch(
            parent_of, self.context, resnapshot=self.settings.cascades == "resnapshot",
        ) if parent_of else None
        if not follows and watch is not None:  # decode only what the watch reads
            hidden = frozenset(mapped.names) - watch.columns()
        builder = None
        if follows:
            columns = map_definition(
                mapped, hidden, self._extended_types(schema, table), self.collations(),
                self.mariadb, read_definition(self.control, schema, table, hidden))
            builder = RowBuilder(schema, table, pk, self.settings.no_pk, self.context,
                                 columns)
            if not pk:
                self._warn_no_pk(mapped.qualified)
        return TablePlan(mapped, self._decoder(mapped, hidden), builder, watch)

    def _decoder(self, mapped: tm.TableMap, hidden: frozenset[str]) -> Decode:
        extended = self._extended_types(mapped.schema, mapped.table)
        if self.library is not None:
            return LibraryRows(self.library, mapped, hidden, extended).decode
        try:
            specs = [column_spec(c, self.collations(), extended, self.mariadb)
                     for c in mapped.columns]
        except UnsupportedColumn as exc:
            raise UnsupportedColumn(f"{mapped.qualified}: {exc}") from None
        return TableDecoder(mapped, specs, hidden).decode

    def table_map_event(self, packet: bytes, fmt: FormatDescription) -> None:
        """Reference mode: the library keeps its own table map."""
        if self.library is not None:
            self.library.table_map_event(packet, fmt)

    def collations(self) -> dict[int, str]:
        if self._collations is None:
            self._collations = self.control.collations()
        return self._collations

    def _extended_types(self, schema: str, table: str) -> Kinds:
        return {} if self.history is None else self.history.kinds(schema, table)

    def _read_kinds(self, schema: str, table: str) -> Kinds:
        """The server's kinds of a table the history must ask for (see
        :mod:`meepo_mysql.schema_history`); said aloud when the table is gone by now."""
        try:
            found = self.control.mariadb_extended_types(schema, table)
            gone = not found and not self.control.query(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                "TABLE_NAME = %s", schema, table)
        except pymysql.err.MySQLError as exc:
            log.warning("cannot read the JSON, INET and UUID columns of %s.%s (%s); "
                        "they stay text or bytes", schema, table, error_text(exc))
            return {}
        if gone:
            self.context.metrics.record_failure("source", "column_types_unknown")
            log.warning("%s.%s no longer exists on the server, so the JSON, INET and UUID "
                        "columns of its events read now cannot be known: they arrive as text "
                        "or bytes", schema, table)
        return found

    def _all_kinds(self) -> dict[str, dict[str, Kinds | None]]:
        return followed_state(
            self.control.mariadb_extended_types_in(self.settings.filter.schemas()))

    def _refuse_hidden_key(self, mapped: tm.TableMap, hidden: frozenset[str],
                           pk: tuple[str, ...]) -> None:
        for column in pk:
            if column in hidden:
                rules = self.settings.filter.rules_hiding(mapped.schema, mapped.table, column)
                key = f"{self.settings.key_path}.columns.\"{rules[0]}\"" if rules else \
                    f"{self.settings.key_path}.columns"
                raise SourceError(
                    f"{key} hides {column!r}, a primary-key column of {mapped.qualified}; "
                    "every event carries its key in pk, so a key column cannot be hidden: "
                    "keep the column, or leave the table out with exclude_tables"
                )

    def _warn_no_pk(self, qualified: str) -> None:
        if qualified in self._no_pk_warned:
            return
        self._no_pk_warned.add(qualified)
        if self.settings.no_pk == "skip":
            log.warning(
                "table %s has no primary key: its rows are skipped (no_pk = \"skip\"); add a "
                "primary key, or set no_pk = \"row\" to key events by the whole row",
                qualified,
            )
        else:
            log.warning("table %s has no primary key: events are keyed by the whole row "
                        "(no_pk = \"row\")", qualified)
