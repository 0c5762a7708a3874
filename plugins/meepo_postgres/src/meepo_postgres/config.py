"""The ``postgres`` source's options, validated without I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from meepo_core import REQUIRED, Computed, Options, OptionSpec, TableFilter, parse_table_filter

from .positions import parse_lsn

#: Followed only when a pattern names the schema literally, never through a schema glob.
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})

START_WORDS = ("latest", "slot")
#: Replication slot names: lower-case letters, digits and underscores, at most 63 bytes.
SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_NAME_LIMIT = 63

DSN = OptionSpec(
    "dsn", "string", REQUIRED,
    "`postgresql://USER:PASSWORD@HOST:PORT/DATABASE` (or `postgres://`); percent-encode "
    "special characters; libpq parameters such as `?sslmode=verify-full&sslrootcert=ca.pem` "
    "pass through. Logical replication reads one database, so it must be named.")
TABLES = OptionSpec(
    "tables", "array of strings", ["*.*"],
    "`schema.table` names or shell globs (`public.order_*`, `*.audit`). Globs over schemas "
    "leave out `pg_catalog`, `information_schema` and `pg_toast`.")
EXCLUDE_TABLES = OptionSpec(
    "exclude_tables", "array of strings", [], "`schema.table` names or globs to leave out.")
COLUMNS = OptionSpec(
    "columns", "table", {},
    "Per table (name or glob): `{ include = [...] }` or `{ exclude = [...] }` (column globs "
    "allowed). Hidden columns are removed before an event is built, so they never reach a "
    "sink. When several rules match a table, a column must pass all of them.")
SLOT = OptionSpec(
    "slot", "string", Computed("`meepo_<pipeline>`"),
    "The logical replication slot (lower-case letters, digits, `_`), created with "
    "`pgoutput` if missing. `orders-eu` gives `meepo_orders_eu`.")
PUBLICATION = OptionSpec(
    "publication", "string", Computed("`meepo_<pipeline>`"),
    "An existing publication, or the name of one to create. meepo creates it `FOR TABLE` "
    "the followed tables that exist, marks it with a comment, and at each start and once "
    "per `heartbeat` while running adds tables that match `tables` since; a publication it "
    "did not create is used as it is (`FOR ALL TABLES` works too: the source filters).")
START = OptionSpec(
    "start", "string", "latest",
    'Used only when no checkpoint exists: `"latest"` (changes committed from now on; an '
    "existing slot's older changes are skipped, with a warning saying how much), "
    '`"slot"` (everything the existing slot still holds, e.g. after losing the checkpoint '
    "file), or an LSN such as `\"0/16B3748\"` (not before the slot's confirmed position). "
    "A slot created now starts at its creation point.")
HEARTBEAT = OptionSpec(
    "heartbeat", "number", 10.0,
    "Seconds. After this much silence the source asks the server for a reply; if nothing "
    "at all arrives for 2.5 heartbeats, the stream is stalled and meepo reconnects. Also the "
    "pace at which an idle pipeline's checkpoint follows the server's WAL (below).",
    minimum=0.1)
SNAPSHOT_NEW_TABLES = OptionSpec(
    "snapshot_new_tables", "boolean", False,
    "When a table starts to match `tables` while the pipeline runs (created, renamed into "
    "the pattern), also copy the rows it already holds (an incremental snapshot, `read` "
    'events); see "New tables" below.')
RECONNECT_ATTEMPTS = OptionSpec(
    "reconnect_attempts", "integer", 10,
    "Consecutive failed reconnects (exponential backoff 0.5 s … 30 s) before the pipeline "
    "stops with an error.", minimum=0)
MAX_RETAINED_WAL = OptionSpec(
    "max_retained_wal", "integer or string", None,
    'Bytes (`1073741824`) or a PostgreSQL size (`"512MB"`, `"1GB"`) of WAL the slot may '
    "retain before the source reports itself unhealthy (`Source.health`): `meepo serve`'s "
    "`/readyz` then names the pipeline. Checked with one short query every few seconds, "
    "only when set.")
#: The ``postgres`` source's options, in the order its docs list them.
OPTIONS = (DSN, TABLES, EXCLUDE_TABLES, COLUMNS, SLOT, PUBLICATION, START, HEARTBEAT,
           SNAPSHOT_NEW_TABLES, RECONNECT_ATTEMPTS, MAX_RETAINED_WAL)


@dataclass(frozen=True)
class Start:
    """Where to begin when no checkpoint exists: ``latest``, ``slot`` or an LSN."""

    kind: str
    lsn: int | None = None


@dataclass(frozen=True)
class PostgresSettings:
    """Everything the source needs, parsed from its options."""

    dsn: str
    host: str
    port: int
    database: str
    user: str
    filter: TableFilter
    slot: str | None  # None: derived from the pipeline name
    publication: str | None
    start: Start
    heartbeat: float
    reconnect_attempts: int
    dsn_key: str  # e.g. tool.meepo.pipelines.orders.source.dsn, for messages
    key_path: str = "source"
    pipeline: str | None = None  # from the key path, when the options came from a config
    #: Bytes of WAL the slot may retain before ``health`` reports it (None: no limit).
    max_retained_wal: int | None = None
    #: Copy the rows a table already holds when it starts to match ``tables`` while the
    #: pipeline runs (created, renamed into the pattern, added to the publication).
    snapshot_new_tables: bool = False

    @property
    def address(self) -> str:
        """``host:port/database`` for messages (never the password)."""
        return f"{self.host}:{self.port}/{self.database}"

    def slot_name(self, pipeline: str) -> str:
        return self.slot or default_name(self.pipeline or pipeline)

    def publication_name(self, pipeline: str) -> str:
        return self.publication or default_name(self.pipeline or pipeline)


def default_name(pipeline: str) -> str:
    """``meepo_<pipeline>``, made a valid slot name (``orders-eu`` -> ``meepo_orders_eu``)."""
    return ("meepo_" + re.sub(r"[^a-z0-9_]", "_", pipeline.lower()))[:_NAME_LIMIT]


def pipeline_of(key_path: str) -> str | None:
    """``orders`` from ``tool.meepo.pipelines.orders.source``."""
    _, found, rest = key_path.partition("pipelines.")
    if not found or not rest.endswith(".source"):
        return None
    return rest.removesuffix(".source") or None


def parse_settings(options: Options) -> PostgresSettings:
    """Validate every option; errors name the full key path (no I/O)."""
    host, port, database, user = _parse_dsn(options)
    table_filter = parse_table_filter(options, ["*.*"], "public", SYSTEM_SCHEMAS,
                                      (TABLES, EXCLUDE_TABLES, COLUMNS))
    slot = options.string(SLOT, None)  # None: derived from the pipeline's name
    if slot is not None and not SLOT_NAME.match(slot):
        raise options.error(
            "slot", f"{slot!r} is not a valid replication slot name: use lower-case letters, "
            "digits and underscores, at most 63 characters"
        )
    publication = options.string(PUBLICATION, None)
    if publication is not None and not 0 < len(publication.encode()) <= _NAME_LIMIT:
        raise options.error("publication", "must be a name of 1 to 63 bytes")
    start = _parse_start(options, options.string(START))
    heartbeat = options.number(HEARTBEAT)
    attempts = options.integer(RECONNECT_ATTEMPTS)
    max_retained_wal = _parse_size(options, MAX_RETAINED_WAL)
    snapshot_new_tables = options.boolean(SNAPSHOT_NEW_TABLES)
    options.done()
    return PostgresSettings(
        dsn=options.string(DSN), host=host, port=port, database=database, user=user,
        filter=table_filter,
        slot=slot, publication=publication, start=start, heartbeat=heartbeat,
        reconnect_attempts=attempts, dsn_key=options.key_path("dsn"), key_path=options.path,
        pipeline=pipeline_of(options.path), max_retained_wal=max_retained_wal,
        snapshot_new_tables=snapshot_new_tables,
    )


_SIZE = re.compile(r"^\s*(\d+)\s*(B|kB|MB|GB|TB)?\s*$")
_UNITS = {None: 1, "B": 1, "kB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def _parse_size(options: Options, spec: OptionSpec) -> int | None:
    """Bytes from an integer or a PostgreSQL-style size (``"512MB"``, ``"1GB"``)."""
    key = spec.name
    value = options.get(spec, object)
    if value is None:
        return None
    found = _SIZE.match(str(value)) if not isinstance(value, bool) else None
    if found is None or int(found.group(1)) < 1:
        raise options.error(key, f"must be a size such as 1073741824, \"512MB\" or \"1GB\", "
                            f"not {value!r}")
    return int(found.group(1)) * _UNITS[found.group(2)]


def _parse_dsn(options: Options) -> tuple[str, int, str, str]:
    example = ("write postgresql://USER:PASSWORD@HOST:PORT/DATABASE, e.g. "
               "postgresql://repl:secret@127.0.0.1:5432/shop")
    url = options.server_url(DSN, schemes=("postgresql", "postgres"), default_port=5432,
                             example=example)
    database = url.database
    if not database:
        raise options.error(
            "dsn", f"names no database, and logical replication reads one database; {example}"
        )
    if "replication=" in url.query:
        raise options.error("dsn", "must not set ?replication=; meepo sets it where needed")
    return url.host, url.port, database, url.user


def _parse_start(options: Options, text: str) -> Start:
    value = text.strip()
    if value in START_WORDS:
        return Start(value)
    try:
        return Start("lsn", parse_lsn(value))
    except ValueError:
        raise options.error(
            "start", f"{text!r} is not \"latest\", \"slot\" or an LSN such as \"0/16B3748\""
        ) from None
