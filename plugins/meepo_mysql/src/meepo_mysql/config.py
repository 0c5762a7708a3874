"""The ``mysql`` source's options, validated without I/O."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from meepo_core import REQUIRED, Computed, Options, OptionSpec, TableFilter, parse_table_filter

from .positions import FILE_POS, gtid_flavor, normalize_gtid

NO_PK_CHOICES = ("skip", "row")
#: ``meepo``: meepo's own row decoder; ``library``: python-mysql-replication's, as a
#: reference for comparisons and bug reports (slower; see meepo_mysql.reference).
CASCADE_CHOICES = ("warn", "resnapshot")
DECODER_CHOICES = ("meepo", "library")
#: Followed only when a pattern names the schema literally (``mysql.*``), not by ``*.*``.
SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
_SSL_PARAMS = ("ssl_ca", "ssl_cert", "ssl_key")
_BOOL_PARAMS = ("ssl_verify_cert", "ssl_verify_identity", "ssl_disabled")
_SERVER_ID_BASE = 0x40000000  # derived ids fall in [2**30, 2**31), far from typical ones

DSN = OptionSpec(
    "dsn", "string", REQUIRED,
    "`mysql://USER:PASSWORD@HOST:PORT[/DB]` (or `mariadb://`); percent-encode special "
    "characters in the password. Optional `?ssl_ca=…&ssl_cert=…&ssl_key=…"
    "&ssl_verify_cert=true&ssl_verify_identity=true&ssl_disabled=true&connect_timeout=10`. "
    "A `/DB` makes `tables` default to `DB.*`.")
TABLES = OptionSpec(
    "tables", "array of strings", Computed('`["DB.*"]` with a `/DB` in `dsn`, else `["*.*"]`'),
    "`schema.table` names or shell globs (`shop.order_*`, `*.audit`). Globs over schemas "
    "leave out `mysql`, `sys`, `information_schema` and `performance_schema`; name them "
    "literally to follow them. Tables created later that match are followed too.")
EXCLUDE_TABLES = OptionSpec(
    "exclude_tables", "array of strings", [], "`schema.table` names or globs to leave out.")
COLUMNS = OptionSpec(
    "columns", "table", {},
    "Per table (name or glob): `{ include = [...] }` or `{ exclude = [...] }` (column globs "
    "allowed). Hidden columns are skipped by the decoder, so they never reach a sink. When "
    "several rules match a table, a column must pass all of them. A rule may not hide a "
    "primary-key column (every event carries the key in `pk`): `meepo check` and the start "
    "refuse it, naming the rule, and a table created later that such a rule matches stops "
    "the stream with the same message when its first row arrives.")
START = OptionSpec(
    "start", "string", "latest",
    'Used only when no checkpoint exists: `"latest"`, `"earliest"` (the oldest binlog still '
    'on the server), `"FILE:POS"` (e.g. `"binlog.000003:1234"`), or a GTID set (MariaDB '
    '`"0-1-100"`, MySQL `"uuid:1-100"`). A GTID set also selects GTID mode for resuming '
    "(below).")
SERVER_ID = OptionSpec(
    "server_id", "integer", Computed("derived"),
    "The replica id meepo registers with. Unless set, a stable id in `[2^30, 2^31)` derived "
    "from the host, the config file's path and the pipeline name, so pipelines of the same "
    "name in two projects do not collide and a restarted pipeline replaces its own stale "
    "connection. Side runs next to the pipeline (`meepo es backfill`) always derive their "
    "own id, also when `server_id` is set. Two replicas with one id make the server drop "
    "the first; meepo then stops it with a line naming this key.", minimum=1)
HEARTBEAT = OptionSpec(
    "heartbeat", "number", 10.0,
    "Seconds. The server sends a heartbeat after this much silence; if nothing at all "
    "(event or heartbeat) arrives for 2.5 heartbeats, the stream is considered stalled and "
    "meepo reconnects.", minimum=0.1)
NO_PK = OptionSpec(
    "no_pk", "string", "skip",
    'Tables without a primary key: `"skip"` (one warning per table, naming it, and a '
    '`no_pk_skipped` count) or `"row"` (the whole visible row image, as a tuple in column '
    "order, is the key; an UPDATE therefore changes the key).", choices=NO_PK_CHOICES)
RECONNECT_ATTEMPTS = OptionSpec(
    "reconnect_attempts", "integer", 10,
    "Consecutive failed reconnects (exponential backoff 0.5 s … 30 s) before the pipeline "
    "stops with an error.", minimum=0)
DECODER = OptionSpec(
    "decoder", "string", "meepo",
    '`"meepo"`: meepo\'s own row decoder; `"library"` decodes rows with '
    "python-mysql-replication instead: the reference, for comparing a value and for bug "
    "reports (see *Decoding*).", choices=DECODER_CHOICES)
SNAPSHOT_NEW_TABLES = OptionSpec(
    "snapshot_new_tables", "boolean", False,
    "When a filled table is renamed into `tables` while the pipeline runs (its rows were "
    "never in the stream), copy them with a snapshot; see *Schema changes*. Tables created "
    "inside `tables` need none: their rows (also of `CREATE TABLE ... SELECT`) are in the "
    "binlog.")
CASCADES = OptionSpec(
    "cascades", "string", "warn",
    '`"warn"`: log the foreign keys that cascade into followed tables; `"resnapshot"`: '
    "after a parent key change or delete whose foreign keys cascade into a followed child "
    "table, snapshot the child rows the cascade changed (see *Limits*).",
    choices=CASCADE_CHOICES)
#: The ``mysql`` source's options, in the order its docs list them.
OPTIONS = (DSN, TABLES, EXCLUDE_TABLES, COLUMNS, START, SERVER_ID, HEARTBEAT, NO_PK,
           RECONNECT_ATTEMPTS, DECODER, SNAPSHOT_NEW_TABLES, CASCADES)


@dataclass(frozen=True)
class Start:
    """Where to begin when no checkpoint exists."""

    kind: str  # "latest" | "earliest" | "position" | "gtid"
    file: str | None = None
    pos: int | None = None
    gtid: str | None = None
    flavor: str | None = None  # of the GTID set: "mariadb" | "mysql"


@dataclass(frozen=True)
class MySQLSettings:
    """Everything the source needs, parsed from its options."""

    host: str
    port: int
    user: str
    password: str
    connect_args: dict[str, Any]
    filter: TableFilter
    start: Start
    server_id: int | None
    heartbeat: float
    no_pk: str
    reconnect_attempts: int
    dsn_key: str  # e.g. tool.meepo.pipelines.orders.source.dsn, for runtime messages
    key_path: str = field(default="source")
    decoder: str = "meepo"
    #: ``"resnapshot"``: snapshot the child rows a foreign-key cascade changed unlogged.
    cascades: str = "warn"
    #: Copy the rows of a filled table renamed into ``tables`` (a snapshot of it).
    snapshot_new_tables: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def connection_settings(self) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect``."""
        return {
            "host": self.host, "port": self.port, "user": self.user, "password": self.password,
            "charset": "utf8mb4", **self.connect_args,
        }

    def resolved_server_id(self, identity: str, purpose: str = "run") -> int:
        """``server_id`` if set (for ``meepo run``), else a stable id derived from the
        pipeline's identity (host, config file, name and purpose), so that pipelines of the
        same name in two projects, or a backfill next to its live pipeline, never share one.
        """
        if self.server_id is not None and purpose == "run":
            return self.server_id
        seed = f"meepo:{self.server_id}:{identity}" if self.server_id else f"meepo:{identity}"
        return _SERVER_ID_BASE + (zlib.crc32(seed.encode()) & 0x3FFFFFFF)


def parse_settings(options: Options) -> MySQLSettings:
    """Validate every option; errors name the full key path (no I/O)."""
    host, port, user, password, database, connect_args = _parse_dsn(options)
    table_filter = parse_table_filter(
        options, [f"{database}.*"] if database else ["*.*"], "shop", SYSTEM_SCHEMAS,
        (TABLES, EXCLUDE_TABLES, COLUMNS))
    start = _parse_start(options, options.string(START))
    server_id = options.integer(SERVER_ID, None)
    if server_id is not None and server_id > 0xFFFFFFFF:
        raise options.error("server_id", f"must be at most 4294967295, not {server_id}")
    heartbeat = options.number(HEARTBEAT)
    no_pk = options.choice(NO_PK)
    attempts = options.integer(RECONNECT_ATTEMPTS)
    decoder = options.choice(DECODER)
    cascades = options.choice(CASCADES)
    snapshot_new_tables = options.boolean(SNAPSHOT_NEW_TABLES)
    options.done()
    return MySQLSettings(
        host=host, port=port, user=user, password=password, connect_args=connect_args,
        filter=table_filter, start=start,
        server_id=server_id, heartbeat=heartbeat, no_pk=no_pk, reconnect_attempts=attempts,
        dsn_key=options.key_path("dsn"), key_path=options.path, decoder=decoder,
        cascades=cascades, snapshot_new_tables=snapshot_new_tables,
    )


def _parse_dsn(options: Options) -> tuple[str, int, str, str, str | None, dict[str, Any]]:
    url = options.server_url(
        DSN, schemes=("mysql", "mariadb"), default_port=3306,
        example="write mysql://USER:PASSWORD@HOST:PORT, e.g. mysql://repl:secret@127.0.0.1:3306")
    args: dict[str, Any] = {"connect_timeout": 10}
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        if key in _SSL_PARAMS:
            args.setdefault("ssl", {})[key.removeprefix("ssl_")] = value
        elif key in _BOOL_PARAMS:
            if value.lower() not in ("true", "false", "1", "0"):
                raise options.error("dsn", f"?{key}= takes true or false, not {value!r}")
            args[key] = value.lower() in ("true", "1")
        elif key == "connect_timeout":
            if not value.isdigit() or int(value) < 1:
                raise options.error("dsn", f"?connect_timeout= takes whole seconds, not {value!r}")
            args[key] = int(value)
        else:
            known = ", ".join((*_SSL_PARAMS, *_BOOL_PARAMS, "connect_timeout"))
            raise options.error("dsn", f"unknown parameter ?{key}=; known: {known}")
    return url.host, url.port, url.user, url.password, url.database or None, args


def _parse_start(options: Options, text: str) -> Start:
    value = text.strip()
    if value in ("latest", "earliest"):
        return Start(value)
    flavor = gtid_flavor(value)  # before FILE:POS, which a MySQL "uuid:23" also matches
    if flavor is not None:
        return Start("gtid", gtid=normalize_gtid(value), flavor=flavor)
    match = FILE_POS.match(value)
    if match:
        pos = int(match["pos"])
        if pos < 4:
            raise options.error("start", f"binlog positions start at 4, not {pos}")
        return Start("position", file=match["file"], pos=pos)
    raise options.error(
        "start", f"{text!r} is not \"latest\", \"earliest\", \"FILE:POS\" (e.g. "
        "\"binlog.000003:1234\") or a GTID set (MariaDB \"0-1-100\", MySQL \"uuid:1-100\")"
    )
