"""``sql`` sink: replicates row events into another database through SQLAlchemy Core.

* write, update and snapshot rows (``read``): the dialect's upsert of the ``after`` image
  (see :mod:`meepo_sqlalchemy.upsert`); delete: ``DELETE`` by primary key. Target tables
  must exist and have a primary key; they are reflected once.
* an event whose ``after`` holds :data:`~meepo_core.UNCHANGED` values (columns the source
  did not send because they did not change) is a *patch*: ``UPDATE`` of the other columns
  of the stored row (found by its old key, so a key change moves it), leaving those columns
  as they are stored. If the row is not in the target, the event goes to the dead-letter
  store: inserting it would turn the unsent values into NULL; unless it is a replay that a
  later event already superseded (see :mod:`meepo_sqlalchemy.applied_mark`).
* one transaction per batch: the batch is durable when ``apply`` returns, and a replayed
  batch (at-least-once) converges to the same rows.
* ``version_column``: the target column that stores each row's event ``sequence``; then
  an older event never overwrites a newer row (replays of old batches cannot regress).
* ``exactly_once``: the sink owns the pipeline's position; each batch's position is written
  in the batch's transaction (see :mod:`meepo_sqlalchemy.sql_positions`) and the pipeline
  resumes from it, so no batch is applied twice. Dead letters are made durable before the
  commit. A source transaction split over several batches (only its last batch carries a
  position) is one transaction of the destination, with a savepoint per batch.
* An event that can never apply (unknown column, missing table, a constraint violation)
  goes to the dead-letter store and the rest of the batch still commits; connection
  failures raise and the runner retries the whole batch.
* schema changes (a column added, renamed, dropped or widened, a table created, renamed,
  truncated or dropped at the source) are applied to the target tables in their place
  among the rows, each in its own transaction; see :mod:`meepo_sqlalchemy.sql_schema`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import (
    ARRAY,
    JSON,
    Connection,
    Engine,
    MetaData,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    exists,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    NoSuchTableError,
    ProgrammingError,
    SQLAlchemyError,
    StatementError,
)

from meepo_core import (
    UNCHANGED,
    Batch,
    Computed,
    Options,
    OptionSpec,
    Position,
    RowEvent,
    SchemaChange,
    SinkError,
    TransactionalSink,
    qualified_name,
)

from .applied_mark import AppliedMark
from .sql_positions import DEFAULT_TABLE, PositionTable
from .sql_schema import SCHEMA_OPTIONS, Refusal, SchemaApplier, SchemaOptions
from .table_names import QUOTES, format_table_name, illegal_name, parse_table_name
from .upsert import SUPPORTED_DIALECTS, upsert_statement
from .urls import describe, url_option, url_spec

if TYPE_CHECKING:
    from meepo_core import PipelineContext

log = logging.getLogger("meepo.sql")

#: Errors that concern one event's data, not the connection: dead letter, do not retry.
_EVENT_ERRORS = (IntegrityError, DataError, ProgrammingError)


#: CHECK constraint failures, which the MySQL drivers raise as OperationalError:
#: MariaDB's ER_CONSTRAINT_FAILED (JSON columns check json_valid) and MySQL's.
_CHECK_FAILED_CODES = (4025, 3819)


def _event_error(exc: BaseException) -> bool:
    """Whether ``exc`` concerns one event's data: one of :data:`_EVENT_ERRORS`, a failed
    CHECK constraint, or a value nested deeper than the JSON encoder goes (RecursionError,
    raised by the driver or wrapped by SQLAlchemy's JSON type)."""
    if isinstance(exc, (*_EVENT_ERRORS, RecursionError)):
        return True
    if not isinstance(exc, StatementError):
        return False
    args: tuple[object, ...] = tuple(getattr(exc.orig, "args", ()))
    return isinstance(exc.orig, RecursionError) or (
        bool(args) and args[0] in _CHECK_FAILED_CODES)


@dataclass(frozen=True)
class TableMapping:
    """Where one source table goes: ``target`` ("name" or "schema.name", a part with a dot
    quoted: ``public."a.b"``; see :func:`~meepo_sqlalchemy.table_names.parse_table_name`)
    and renamed or dropped (``False``) columns."""

    target: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)


class _Unappliable(Exception):
    """This event can never be applied; its message says why and how to fix it."""


URL_OPTION = url_spec("Target database (postgresql, mysql, mariadb, sqlite).")
TABLES = OptionSpec(
    "tables", "table", Computed("all tables, same name"),
    'Source table (`"schema.table"` or `"table"`) → target name (`"table"`, '
    '`"schema.table"`, `\'public."a.b"\'`), or `{ target = "...", columns = { src = "dst", '
    "dropped = false } }`; when given, other tables are not replicated.")
SCHEMA = OptionSpec("schema", "string", Computed("default schema"),
                    "Target schema for names without one.")
VERSION_COLUMN = OptionSpec("version_column", "string", None,
                            "Target column storing the event `sequence` (skip older events).")
EXACTLY_ONCE = OptionSpec(
    "exactly_once", "boolean", False,
    "The sink owns the pipeline's position: each batch's position is written in the batch's "
    "transaction (see *Exactly-once*).")
POSITION_TABLE = OptionSpec(
    "position_table", "string", DEFAULT_TABLE,
    "With `exactly_once`: the table holding positions (in `schema` when set), created on "
    "first use.")


class SqlSink(TransactionalSink):
    """See the module docstring; options in the plugin README."""

    OPTIONS = (URL_OPTION, TABLES, SCHEMA, VERSION_COLUMN, *SCHEMA_OPTIONS, EXACTLY_ONCE,
               POSITION_TABLE)

    #: Config key path of the URL, for errors; set by ``from_options``.
    url_key = "url"
    follows_schema_changes = True

    def __init__(self, url: URL, tables: dict[str, TableMapping] | None = None,
                 schema: str | None = None, version_column: str | None = None,
                 schema_options: SchemaOptions | None = None) -> None:
        self.url = url
        self.tables = tables
        self.schema = schema
        self.version_column = version_column
        self.schema_changes = SchemaApplier(schema_options or SchemaOptions())
        self._engine: Engine | None = None
        self._reflected: dict[tuple[str | None, str], Table] = {}
        self._context: PipelineContext | None = None
        self._lock = threading.Lock()
        self.label = f"sql {describe(url)}"
        self._mark: AppliedMark | None = None
        self._superseded: list[RowEvent] = []  # replayed patches whose row is gone
        #: With ``exactly_once``: where batch positions are stored.
        self.positions: PositionTable | None = None
        #: With ``exactly_once``: the open transaction of a source transaction split over
        #: batches, committed with the batch that carries its position.
        self._span: Connection | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        url = url_option(options, URL_OPTION)
        if url.get_backend_name() not in SUPPORTED_DIALECTS:
            raise options.error("url", f"dialect {url.get_backend_name()!r} has no upsert "
                                "here; use one of " + ", ".join(SUPPORTED_DIALECTS))
        schema = options.string(SCHEMA, None)  # None: the connection's default
        version = options.string(VERSION_COLUMN)
        # position_table is read (so allowed) only with exactly_once
        positions = (PositionTable(options.string(POSITION_TABLE), schema)
                     if options.boolean(EXACTLY_ONCE) else None)
        raw = options.table(TABLES, None)  # None: every table, under its own name
        tables = None
        if raw is not None:
            tables = {}
            for written, spec in raw.items():
                key = f"tables.{written}"
                source, same_name = _source_key(written, options, key)
                if isinstance(spec, str):
                    tables[source] = TableMapping(_target(spec, options, key))
                    continue
                if not isinstance(spec, dict):
                    raise options.error(key, 'must be a target name or a table like '
                                        '{ target = "orders", columns = { id = "order_id" } }')
                sub = Options(spec, options.key_path(key), options.base_dir)
                target = sub.string("target", None)
                if target is not None:
                    target = _target(target, sub, "target")
                columns: dict[str, str | None] = {}
                for column, renamed in sub.table("columns", {}).items():
                    if renamed is False:
                        columns[column] = None
                    elif isinstance(renamed, str) and renamed:
                        columns[column] = renamed
                    else:
                        raise sub.error(f"columns.{column}",
                                        "must be the target column name, or false to drop it")
                sub.done()
                tables[source] = TableMapping(target or same_name, columns)
        schema_options = SchemaOptions.from_options(options)
        options.done()
        sink = cls(url, tables, schema, version, schema_options)
        sink.url_key = options.key_path("url")
        sink.positions = positions
        return sink

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = create_engine(self.url, pool_pre_ping=True)
            except (SQLAlchemyError, ImportError) as exc:
                raise SinkError(f"cannot use {describe(self.url)}: {exc}; install its driver",
                                retryable=False) from exc
        return self._engine

    @property
    def claims_position(self) -> bool:
        return self.positions is not None

    def stored_position(self, pipeline: str) -> Position | None:
        assert self.positions is not None, "exactly_once is off"
        try:
            with self.engine.connect() as conn:
                return self.positions.read(conn, pipeline)
        except SQLAlchemyError as exc:
            raise self._failure(exc) from exc

    def open(self, context: PipelineContext) -> None:
        self._context = context
        identity = repr((describe(self.url), self.schema, sorted((self.tables or {}).items())))
        self._mark = AppliedMark(context.identity, identity, self.schema)
        if self.positions is not None:
            with self.engine.begin() as conn:
                self.positions.create(conn)

    def check(self) -> list[str]:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                problems = self.positions.problems(conn) if self.positions else []
                for source, mapping in (self.tables or {}).items():
                    schema, name = self._target_name(parse_table_name(source)[1], mapping)
                    illegal = _illegal(conn.dialect.name, schema, name)
                    if illegal is not None:
                        problems.append(
                            f'tables."{source}": target table {_qualified(schema, name)} '
                            f"cannot exist in {describe(self.url)}: {illegal}; map {source} "
                            "to another name")
                    elif not inspect(conn).has_table(name, schema=schema):
                        problems.append(
                            f"target table {_qualified(schema, name)} for {source} does not "
                            f"exist in {describe(self.url)}; create it (with a primary key)"
                        )
                return problems
        except SQLAlchemyError as exc:
            return [f"cannot reach {describe(self.url)}: {_first_line(exc)}"]

    def close(self) -> None:
        self._end_span()  # an unfinished source transaction: rolled back, replayed next run
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- applying --------------------------------------------------------------------------
    def apply(self, batch: Batch) -> None:
        if batch.schema_changes:
            # each change in its own transaction (or, inside a source transaction that
            # exactly-once holds open, a savepoint of it); the rows between them as batches
            # without a position; then the position alone, recorded with exactly-once
            for part in batch.in_order():
                if isinstance(part, SchemaChange):
                    self._apply_schema_change(part)
                else:
                    self._apply_batch(Batch(part))
            self._apply_batch(Batch((), batch.position))
            return
        self._apply_batch(batch)

    def _apply_schema_change(self, change: SchemaChange) -> None:
        if not self.schema_changes.options.follow or not change.table:
            return  # ignored, or a database created or dropped: its tables come one by one
        mapping = self._mapping(change)
        if mapping is None:
            return  # not in `tables`: not replicated by this sink
        schema, name = self._target_name(change.table, mapping)
        renamed_from = change.renamed_from
        old_name = renamed_from[1] if renamed_from and mapping.target is None else None
        keep = {self.version_column} if self.version_column else set()
        with self._lock:
            self._reflected.pop((schema, name), None)
            if old_name is not None:
                self._reflected.pop((schema, old_name), None)
            try:
                with self._ddl_connection() as conn:
                    table = (Table(name, MetaData(), schema=schema, autoload_with=conn)
                             if inspect(conn).has_table(name, schema=schema) else None)
                    self.schema_changes.apply(conn, change, schema, name, table,
                                              mapping.columns, keep, old_name)
            except Refusal as exc:
                self._dead_letter(change, str(exc))
            except _EVENT_ERRORS as exc:
                self._dead_letter(change, f"{_qualified(schema, name)} refused the "
                                  f"{change.kind} of {change.qualified_table}: "
                                  f"{_first_line(exc)}; apply it by hand, then rerun")
            except SQLAlchemyError as exc:
                raise self._failure(exc) from exc
            finally:
                self._reflected.pop((schema, name), None)

    @contextmanager
    def _ddl_connection(self) -> Iterator[Connection]:
        """A transaction for one schema change: a savepoint of the source transaction
        that exactly-once holds open (its locks would block another connection), else
        a transaction of its own."""
        span = self._span
        if span is not None:
            with span.begin_nested():
                yield span
            return
        with self.engine.begin() as conn:
            yield conn

    def _apply_batch(self, batch: Batch) -> None:
        if not batch.events and not self._records(batch):
            return
        if self._spans(batch):
            self._apply_spanning(batch)
            return
        with self._lock:
            mark = None
            try:
                if self._mark is not None and not self._mark.loaded:
                    with self.engine.connect() as conn:
                        self._mark.load(conn)
                with self.engine.begin() as conn:
                    mark = self._apply_all(conn, batch, isolate=False)
            except (SQLAlchemyError, RecursionError) as exc:
                if isinstance(exc, SQLAlchemyError) and not _event_error(exc):
                    raise self._failure(exc) from exc
                # one event broke the transaction: redo the batch with a savepoint per
                # event so only the broken ones go to the dead-letter store
                try:
                    with self.engine.begin() as conn:
                        mark = self._apply_all(conn, batch, isolate=True)
                except SQLAlchemyError as again:
                    raise self._failure(again) from again
            if self._mark is not None:
                self._mark.committed(mark)
            self._count_superseded()

    def _apply_all(self, conn: Connection, batch: Batch, isolate: bool) -> int | None:
        """Apply the batch in ``conn``'s transaction, raise the applied mark with it (and,
        with exactly-once, record the position), and write the dead letters just before
        the commit: once the mark or the position says an event was applied, its dead
        letter exists (a failed commit may write it twice, never not). With exactly-once
        the pipeline's dead letters are made durable before the commit too (also the
        other sinks', applied before this one)."""
        self._superseded = []
        records = self._records(batch)
        if records:
            assert self.positions is not None and self._context is not None
            if not self.positions.record(conn, self._context.pipeline, batch.position):
                return None  # applied before (a stale replay after a rebalance)
        failed = self._apply_events(conn, batch.events, isolate=isolate)
        mark = None
        if self._mark is not None:
            mark = self._mark.record(conn, (event.sequence for event in batch.events))
        for event, reason in failed:
            self._dead_letter(event, reason)
        if records:
            assert self._context is not None
            self._context.dead_letters.sync()
        return mark

    def _count_superseded(self) -> None:
        if not self._superseded or self._context is None:
            return
        count, self._superseded = len(self._superseded), []
        self._context.metrics.record_failure(self.label, "replayed_patch_row_gone", count)
        log.info(
            "%s: %d replayed update(s) without their row skipped: applied before a crash, "
            "their row was deleted (or re-keyed) later in the replay, or was missing then "
            "and they were dead-lettered then (counted as replayed_patch_row_gone)",
            self.label, count,
        )

    def _failure(self, exc: SQLAlchemyError) -> SinkError:
        """Retryable, unless the server refused the credentials: retrying cannot fix that."""
        if _refused(exc):
            return SinkError(
                f"{self.url_key}: {describe(self.url)} refused the login ({_first_line(exc)}); "
                "fix the user/password in the URL or the user's grants",
                retryable=False,
            )
        return SinkError(f"{self.label}: {_first_line(exc)}")

    def _spans(self, batch: Batch) -> bool:
        """Whether ``batch`` is (or ends) part of a source transaction split over batches,
        which exactly-once applies as one transaction of the destination."""
        return (self.positions is not None and self._context is not None
                and self._context.purpose == "run"
                and (batch.position is None or self._span is not None))

    def _apply_spanning(self, batch: Batch) -> None:
        """Apply ``batch`` in the open transaction of its source transaction (a savepoint,
        so that an event error redoes only this batch event by event); the batch with the
        position records it and commits. A failure rolls back every batch of the source
        transaction, so it stops the pipeline: the next run replays them from the position
        stored with the data."""
        assert self.positions is not None and self._context is not None
        with self._lock:
            try:
                conn = self._span
                if conn is None:
                    conn = self._span = self.engine.connect()
                    conn.begin()
                    if conn.dialect.name == "sqlite":
                        # pysqlite begins only before DML: a SAVEPOINT first would begin
                        # (and its RELEASE commit) a transaction of its own
                        conn.exec_driver_sql("BEGIN")
                try:
                    with conn.begin_nested():
                        failed = self._apply_events(conn, batch.events, isolate=False)
                except _EVENT_ERRORS:
                    with conn.begin_nested():
                        failed = self._apply_events(conn, batch.events, isolate=True)
                for event, reason in failed:
                    self._dead_letter(event, reason)
                if batch.position is not None:
                    self.positions.record(conn, self._context.pipeline, batch.position)
                    self._context.dead_letters.sync()
                    conn.commit()
                    self._end_span()
            except SQLAlchemyError as exc:
                self._end_span()
                raise SinkError(
                    f"{self.label}: {_first_line(exc)}; the source transaction of this batch "
                    "began in earlier batches and was rolled back with them: stopping, the "
                    "next run replays it from the position stored with the data",
                    retryable=False) from exc

    def _end_span(self) -> None:
        span, self._span = self._span, None
        if span is not None:
            # closing rolls back what was not committed; a connection already gone took
            # its transaction with it
            with suppress(SQLAlchemyError):
                span.close()

    def _records(self, batch: Batch) -> bool:
        """Whether ``batch``'s position goes into the position table with its rows."""
        return (self.positions is not None and batch.position is not None
                and self._context is not None and self._context.purpose == "run")

    def _apply_events(self, conn: Connection, events: tuple[RowEvent, ...],
                      isolate: bool) -> list[tuple[RowEvent, str]]:
        """Apply ``events`` on ``conn``; consecutive events of one kind run as one
        ``executemany``, patches and (with ``isolate``) every event alone, in a savepoint
        that an event error rolls back. Returns the events that cannot apply, with why."""
        failed: list[tuple[RowEvent, str]] = []
        for table, kind, items in self._runs(conn, events, failed):
            if not isolate and kind != "patch":
                params = [p for _, p in items]
                conn.execute(self._statement(conn, table, kind, params[0]), params)
                continue
            for event, param in items:
                try:
                    with conn.begin_nested() if isolate else nullcontext():
                        reason = self._apply_one(conn, table, kind, event, param)
                except (SQLAlchemyError, RecursionError) as exc:
                    if not isolate or not _event_error(exc):
                        raise
                    cause = _cause(exc)
                    reason = f"{type(cause).__name__}: {_first_line(cause)}"
                if reason is not None:
                    failed.append((event, reason))
        return failed

    def _apply_one(self, conn: Connection, table: Table, kind: str, event: RowEvent,
                   param: dict[str, Any]) -> str | None:
        """Apply one operation; the reason it can never apply, or ``None``."""
        result = conn.execute(self._statement(conn, table, kind, param), param)
        if kind != "patch" or result.rowcount:
            return None
        keys = table.primary_key.columns
        if conn.scalar(select(exists().where(and_(*(c == param[c.name] for c in keys))))):
            return None  # a newer version is stored, or a replay already moved the row
        if self._mark is not None and self._mark.replayed(event.sequence):
            self._superseded.append(event)  # decided when first applied; see applied_mark
            return None
        unsent = sorted(k for k, v in (event.after or {}).items() if v is UNCHANGED)
        return (f"row {event.pk!r} is not in target table {table.fullname}, and the event "
                f"lacks the value of {', '.join(unsent)} (unchanged, not sent by the source); "
                "copy the row into the target (a backfill), or make the source send whole "
                "rows (PostgreSQL: REPLICA IDENTITY FULL)")

    def _runs(self, conn: Connection, events: tuple[RowEvent, ...],
              failed: list[tuple[RowEvent, str]]) -> Iterator[
                  tuple[Table, str, list[tuple[RowEvent, dict[str, Any]]]]]:
        """Consecutive events on the same table with the same kind and columns, in order."""
        current: tuple[Table, str, tuple[str, ...]] | None = None
        items: list[tuple[RowEvent, dict[str, Any]]] = []
        for event in events:
            mapping = self._mapping(event)
            if mapping is None:
                continue  # not in `tables`: not replicated by this sink
            try:
                table = self._table(conn, event, mapping)
                operations = [
                    (kind, self._params(table, event, mapping, kind))
                    for kind in self._kinds(table, event, mapping)
                ]
            except _Unappliable as exc:
                failed.append((event, str(exc)))
                continue
            for kind, param in operations:
                key = (table, kind, tuple(param))
                if current is not None and key != current:
                    yield current[0], current[1], items
                    items = []
                current = key
                items.append((event, param))
        if current is not None and items:
            yield current[0], current[1], items

    def _kinds(self, table: Table, event: RowEvent, mapping: TableMapping) -> list[str]:
        """``delete``, ``patch`` (the after image holds replicated UNCHANGED values) or
        ``upsert``; an update that changes the primary key deletes the row under the old
        key first, so the replica keeps no stale row."""
        if event.action == "delete":
            return ["delete"]
        if any(value is UNCHANGED and mapping.columns.get(column, column) is not None
               for column, value in (event.after or {}).items()):
            return ["patch"]
        if event.action == "update" and event.before is not None and event.after is not None:
            sources = {target: source for source, target in mapping.columns.items() if target}
            for column in table.primary_key.columns:
                source = sources.get(column.name, column.name)
                if event.before.get(source) != event.after.get(source):
                    return ["delete", "upsert"]
        return ["upsert"]

    def _statement(self, conn: Connection, table: Table, kind: str,
                   param: dict[str, Any]) -> Any:
        if kind == "upsert":
            stmt = upsert_statement(conn.dialect.name, table, list(param), self._version(table))
            if stmt is None:
                raise SinkError(f"{self.label}: no upsert for dialect {conn.dialect.name}",
                                retryable=False)
            return stmt
        where = and_(*(c == bindparam(f"pk_{c.name}") for c in table.primary_key.columns))
        version = self._version(table)
        if version is not None and "v_sequence" in param:
            current = table.c[version]
            newer = (current <= bindparam("v_sequence") if kind == "delete"
                     else current < bindparam("v_sequence"))
            where = and_(where, or_(current.is_(None), newer))
        if kind == "patch":  # SET the columns named in param; pk_* and v_sequence bind WHERE
            return update(table).where(where)
        return delete(table).where(where)

    def _version(self, table: Table) -> str | None:
        if self.version_column and self.version_column in table.c:
            return self.version_column
        return None

    def _mapping(self, event: RowEvent | SchemaChange) -> TableMapping | None:
        if self.tables is None:
            return TableMapping()
        return self.tables.get(event.qualified_table) or self.tables.get(event.table)

    def _target_name(self, table: str, mapping: TableMapping) -> tuple[str | None, str]:
        """``(schema, name)`` of the target of source table ``table`` (its name without
        schema, dots included): the mapping's target, else the same name in ``schema``."""
        if mapping.target is None:
            return self.schema, table
        schema, name = parse_table_name(mapping.target)
        return (schema if schema is not None else self.schema), name

    def _table(self, conn: Connection, event: RowEvent, mapping: TableMapping) -> Table:
        # a route transform's destination ("name" or "schema.name") replaces the target
        target = event.destination
        schema, name = (self._target_name(event.table, mapping) if target is None
                        else self._target_name(target, TableMapping(target, mapping.columns)))
        key = (schema, name)
        if key not in self._reflected:
            illegal = _illegal(conn.dialect.name, schema, name)
            if illegal is not None:  # MariaDB fails the whole batch if asked about it
                raise _Unappliable(
                    f"target table {_qualified(schema, name)} cannot exist in "
                    f"{describe(self.url)}: {illegal}; map {event.qualified_table} to another "
                    "table with tables = {...}")
            try:
                table = Table(name, MetaData(), schema=schema, autoload_with=conn)
            except NoSuchTableError as exc:
                raise _Unappliable(
                    f"target table {_qualified(schema, name)} does not exist in "
                    f"{describe(self.url)}; create it, or map {event.qualified_table} to "
                    "another table with tables = {...}"
                ) from exc
            if not table.primary_key.columns:
                raise _Unappliable(f"target table {_qualified(schema, name)} has no primary "
                                   "key; upserts and deletes need one")
            self._reflected[key] = table
        return self._reflected[key]

    def _params(self, table: Table, event: RowEvent, mapping: TableMapping,
                kind: str) -> dict[str, Any]:
        image = event.before if kind == "delete" else event.after
        row: dict[str, Any] = {}
        for column, value in (image or {}).items():
            target = mapping.columns.get(column, column)
            if target is None or value is UNCHANGED:
                continue
            if target not in table.c:
                raise _Unappliable(
                    f"column {column} of {event.qualified_table} has no column {target} in "
                    f"target table {table.fullname}; add it, or map it with "
                    f"columns = {{ {column} = \"other\" }} or drop it with {column} = false"
                )
            if isinstance(value, dict | list) and not isinstance(
                    table.c[target].type, JSON | ARRAY):
                value = _json_text(value)  # MariaDB's JSON reflects as LONGTEXT
            row[target] = value
        version = self._version(table)
        if kind in ("upsert", "patch"):
            if version is not None and event.sequence is not None:
                row[version] = event.sequence
            missing = [c.name for c in table.primary_key.columns if c.name not in row]
            if missing:
                raise _Unappliable(f"event has no value for primary key {', '.join(missing)} "
                                   f"of {table.fullname}")
            if kind == "upsert":
                return row
            # a patch finds the row by its old key (before), else by the after image's
            where = self._params(table, replace(event, before=event.before or event.after),
                                 mapping, "delete")
            return {**row, **where}
        keys = [c.name for c in table.primary_key.columns]
        if all(k in row for k in keys):
            param = {f"pk_{k}": row[k] for k in keys}
        else:
            values = event.pk if isinstance(event.pk, tuple) else (event.pk,)
            if len(values) != len(keys):
                raise _Unappliable(f"cannot match pk {event.pk!r} to the primary key "
                                   f"({', '.join(keys)}) of {table.fullname}")
            param = {f"pk_{k}": v for k, v in zip(keys, values, strict=True)}
        if version is not None and event.sequence is not None:
            param["v_sequence"] = event.sequence
        return param

    def _dead_letter(self, event: RowEvent | SchemaChange, reason: str) -> None:
        if self._context is None:
            raise SinkError(f"{self.label}: {reason}", retryable=False)
        self._context.dead_letter(event, self.label, reason)


#: Login refusals: MySQL/MariaDB error codes and PostgreSQL SQLSTATEs.
_REFUSED_MYSQL_CODES = (1044, 1045, 1698)
_REFUSED_SQLSTATES = ("28000", "28P01")


def _refused(exc: SQLAlchemyError) -> bool:
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _REFUSED_SQLSTATES:
        return True
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] in _REFUSED_MYSQL_CODES


def _qualified(schema: str | None, name: str) -> str:
    return format_table_name(schema, name)


def _illegal(dialect: str, schema: str | None, name: str) -> str | None:
    """Why schema or table ``name`` cannot exist on a ``dialect`` server, or None."""
    for part in (schema, name):
        reason = illegal_name(dialect, part) if part else None
        if reason is not None:
            return f"{part!r}: {reason}"
    return None


def _source_key(written: str, options: Options, key: str) -> tuple[str, str | None]:
    """A ``tables`` key as events name their table (``schema.table``, unquoted), and for
    a quoted key the target of the same name (the key alone no longer tells it)."""
    if not any(quote in written for quote in QUOTES):
        return written, None
    try:
        schema, name = parse_table_name(written)
    except ValueError as exc:
        raise options.error(key, f"{exc}; write table or schema.table, quoting a name "
                            'that contains a dot: public."a.b"') from exc
    return qualified_name(schema or "", name), format_table_name(None, name)


def _target(written: str, options: Options, key: str) -> str:
    """A target name from config, checked to parse (see :func:`parse_table_name`)."""
    try:
        parse_table_name(written)
    except ValueError as exc:
        raise options.error(key, f"{exc}; write table or schema.table, quoting a name "
                            'that contains a dot: public."a.b"') from exc
    return written


def _json_text(value: Any) -> str:
    """A JSON document for a text column; a driver would render a list as a SQL tuple."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except RecursionError as exc:
        raise _Unappliable(f"RecursionError: {exc} (a JSON value nested this deep cannot be "
                           "written)") from None


def _cause(exc: BaseException) -> BaseException:
    """The RecursionError that SQLAlchemy wrapped (its own message would repr the
    parameters, which recurse too), else ``exc``."""
    if isinstance(exc, StatementError) and isinstance(exc.orig, RecursionError):
        return exc.orig
    return exc


def _first_line(exc: BaseException) -> str:
    exc = _cause(exc)
    text_ = str(exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__
