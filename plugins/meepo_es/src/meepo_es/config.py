"""The ``elasticsearch`` sink's options, validated once from config (no I/O except reading
mapping/settings JSON files named in the config)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meepo_core import REQUIRED, Computed, Options, OptionSpec, qualified_name

DECIMAL_MODES = ("string", "float")
VERSIONING_MODES = ("external", "off")
REFRESH_MODES = ("false", "true", "wait_for")
#: What a renamed or dropped column does to the documents already indexed.
COLUMN_CHANGE_MODES = ("keep", "rewrite")
#: Largest external version Elasticsearch accepts (a Java long).
MAX_VERSION = 2**63 - 1
#: The pipeline's retry keys, which the sink follows (it has no retry policy of its own).
PIPELINE_RETRY_KEYS = ("max_retries", "retry_backoff", "retry_backoff_max")

# -- the options, by the README's topics ------------------------------------------------
HOSTS = OptionSpec("hosts", "array of strings", REQUIRED,
                   'Node URLs, `["https://es1:9200", "https://es2:9200"]`.')
API_KEY = OptionSpec("api_key", "string", None,
                     "An API key, as the base64 `encoded` value Elasticsearch returns.")
USERNAME = OptionSpec("username", "string", None,
                      "Basic auth, with `password`; not together with `api_key`.")
PASSWORD = OptionSpec("password", "string", None, "Basic auth, with `username`.")
VERIFY_CERTS = OptionSpec("verify_certs", "boolean", True,
                          "Verify the server's TLS certificate.")
CA_CERTS = OptionSpec("ca_certs", "path", Computed("system CAs"),
                      "PEM file of the CA that signed the cluster's certificate (relative to "
                      "the config file).")
CLIENT_CERT = OptionSpec("client_cert", "path", None,
                         "PEM file of the client certificate, for TLS client authentication.")
CLIENT_KEY = OptionSpec("client_key", "path", None,
                        "PEM file of the client certificate's key.")
REQUEST_TIMEOUT = OptionSpec("request_timeout", "number", 30.0, "Seconds per HTTP request.",
                             minimum=0.1)
INDEX = OptionSpec(
    "index", "string", "{schema}_{table}",
    "Template for every table's index or alias; `{schema}` and `{table}` only. Lower-cased, "
    "as Elasticsearch requires.")
INDICES = OptionSpec(
    "indices", "table", {},
    'Per-table override: `{ "shop.orders" = "orders" }`. A bare table name (`orders = '
    '"..."`) matches it in any schema. Several tables may share one index (sharded tables). '
    "An event routed by a `route` transform (`event.destination`) goes to that index "
    "instead. `meepo es backfill` applies the pipeline's and the sink's transforms, but "
    "builds fresh indices only for the `index`/`indices` names: an event a `route` sends "
    "elsewhere is written to that index directly.")
CREATE_INDICES = OptionSpec(
    "create_indices", "boolean", True,
    "Create a missing index on first use, with the table's `mappings`/`settings`. With "
    "`false`, a missing index stops the pipeline (it is a cluster problem, not the row's).")
REFRESH = OptionSpec(
    "refresh", "string", "false",
    'Bulk `refresh` parameter: `"false"`, `"wait_for"` (documents searchable when `apply` '
    'returns; slower) or `"true"`.', choices=REFRESH_MODES)
ID_SEPARATOR = OptionSpec(
    "id_separator", "string", "|",
    'Joins the values of a composite primary key into the id: pk `("eu", 7)` -> '
    '`"eu\\|7"`. A scalar pk is its text: `42` -> `"42"`.')
DECIMAL = OptionSpec(
    "decimal", "string", "string",
    '`DECIMAL` values as exact strings (`"12.50"`, scale kept) or, with `"float"`, as JSON '
    "numbers (`12.5`, may round).", choices=DECIMAL_MODES)
TIMEZONE = OptionSpec(
    "timezone", "string", "UTC",
    'Zone of naive datetimes (MySQL `DATETIME`), e.g. `"Asia/Shanghai"`; aware values keep '
    "their own offset.")
MAPPINGS = OptionSpec(
    "mappings", "string or table", None,
    "The index mapping, inline or a JSON file name (the file may hold the bare mapping or "
    '`{"mappings": {...}}`, the shape `GET index/_mapping` prints).')
SETTINGS = OptionSpec("settings", "string or table", None,
                      "Index settings, inline or a JSON file name.")
TABLE_OPTIONS = (
    OptionSpec("include", "array of strings", None,
               'Only these columns become fields: `["id", "email", "name"]`.'),
    OptionSpec("exclude", "array of strings", [],
               'Every column but these: `["password_hash"]`. Not together with `include`. '
               "(Better still, hide secrets at the source with the mysql source's "
               "`columns`.)"),
    OptionSpec("rename", "table", {}, 'Field names for columns: `{ mail = "email" }`.'),
    OptionSpec("pk_columns", "array of strings", None,
               'The pk\'s columns in key order, e.g. `["region", "id"]`. Optional: used only '
               "to notice an update that changes the pk, and otherwise learned from the "
               "events."),
    MAPPINGS,
    OptionSpec("settings", "string or table", None,
               "Index settings, inline or a JSON file name; merged over the sink-wide "
               "`settings`."),
)
TABLES = OptionSpec(
    "tables", "table", {},
    'Per-table rules, keyed `"schema.table"` (or a bare table name), below; the sink-wide '
    "`mappings` and `settings` apply to tables without a rule of their own.",
    options=TABLE_OPTIONS, each="TABLE")
RENAMED_COLUMNS = OptionSpec(
    "renamed_columns", "string", "keep",
    '`"rewrite"`: at a column rename, every stored document of the table gets the old '
    'field\'s value under the new name. `"keep"`: old documents keep the old field until '
    "their row is written again.", choices=COLUMN_CHANGE_MODES)
DROPPED_COLUMNS = OptionSpec(
    "dropped_columns", "string", "keep",
    '`"rewrite"`: at a `DROP COLUMN`, the field is removed from every stored document of '
    'the table. `"keep"`: old documents keep it until their row is written again (handy to '
    "keep history searchable).", choices=COLUMN_CHANGE_MODES)
VERSIONING = OptionSpec(
    "versioning", "string", "external",
    '`"external"`: every operation carries `version = event.sequence` with '
    '`version_type=external`. `"off"` sends plain operations.', choices=VERSIONING_MODES)
BULK_ACTIONS = OptionSpec("bulk_actions", "integer", 1000,
                          "Most operations in one bulk request.", minimum=1)
BULK_BYTES = OptionSpec(
    "bulk_bytes", "integer", 5 * 1024 * 1024,
    "About the most bytes in one bulk request (a single bigger document goes alone).",
    minimum=1024)
#: The ``elasticsearch`` sink's options.
OPTIONS = (HOSTS, API_KEY, USERNAME, PASSWORD, VERIFY_CERTS, CA_CERTS, CLIENT_CERT,
           CLIENT_KEY, REQUEST_TIMEOUT, INDEX, INDICES, CREATE_INDICES, REFRESH, ID_SEPARATOR,
           DECIMAL, TIMEZONE, MAPPINGS, SETTINGS, TABLES, RENAMED_COLUMNS, DROPPED_COLUMNS,
           VERSIONING, BULK_ACTIONS, BULK_BYTES)


@dataclass(frozen=True)
class TableRule:
    """Per-table document shaping and index body (``tables."schema.table"`` in config)."""

    include: tuple[str, ...] | None = None
    exclude: frozenset[str] = frozenset()
    rename: dict[str, str] = field(default_factory=dict)
    pk_columns: tuple[str, ...] | None = None
    mappings: dict[str, Any] | None = None
    settings: dict[str, Any] | None = None


@dataclass(frozen=True)
class ClientSettings:
    """How to reach the cluster."""

    hosts: tuple[str, ...]
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    verify_certs: bool = True
    ca_certs: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    request_timeout: float = 30.0
    #: Config key path of ``hosts``, for errors.
    hosts_key: str = "hosts"

    def unreachable(self) -> str:
        """The hint for a connection failure: which hosts, which key to check."""
        return (f"cannot reach {', '.join(self.hosts)}; check {self.hosts_key}, TLS "
                "(verify_certs, ca_certs) and that the cluster is up")


@dataclass(frozen=True)
class SinkSettings:
    """Everything the sink needs, as validated from one ``sinks[N]`` table."""

    client: ClientSettings
    label: str
    index: str = "{schema}_{table}"
    indices: dict[str, str] = field(default_factory=dict)
    tables: dict[str, TableRule] = field(default_factory=dict)
    default_rule: TableRule = field(default_factory=TableRule)
    versioning: bool = True
    decimal: str = "string"
    timezone: tzinfo = UTC
    id_separator: str = "|"
    bulk_actions: int = 1000
    bulk_bytes: int = 5 * 1024 * 1024
    refresh: str = "false"
    create_indices: bool = True
    #: ``renamed_columns`` / ``dropped_columns`` = ``"rewrite"``: apply the change to the
    #: documents already indexed (see :mod:`meepo_es.field_rewrite`).
    rewrite_renamed: bool = False
    rewrite_dropped: bool = False

    def rule(self, schema: str, table: str) -> TableRule:
        """The rule for ``schema.table``: its own entry, else the bare table name's, else
        the sink-wide defaults."""
        qualified = qualified_name(schema, table)
        return self.tables.get(qualified) or self.tables.get(table) or self.default_rule

    def index_name(self, schema: str, table: str) -> str:
        """The index (or alias) for a table: ``indices`` override, else the ``index``
        template; always lower-cased, as Elasticsearch requires."""
        qualified = qualified_name(schema, table)
        name = self.indices.get(qualified) or self.indices.get(table)
        if name is None:
            name = self.index.format(schema=schema, table=table)
        return name.lower()


def parse_settings(options: Options) -> SinkSettings:
    """Read every option of the sink table; ends with ``options.done()``."""
    label = f"{options.path.rsplit('.', 1)[-1] or 'sink'} elasticsearch"
    for key in PIPELINE_RETRY_KEYS:
        if key in options.data:
            raise options.error(key, "retries follow the pipeline's policy: move this key "
                                "from the sink to the pipeline's table")
    hosts = options.string_list(HOSTS)
    if not hosts:
        raise options.error("hosts", 'must list at least one URL, e.g. ["http://127.0.0.1:9200"]')
    for index, host in enumerate(hosts):
        if not host.startswith(("http://", "https://")):
            raise options.error(
                f"hosts[{index}]", f"must be a URL like http://host:9200, not {host!r}"
            )
    username = options.string(USERNAME)
    password = options.string(PASSWORD)
    api_key = options.string(API_KEY)
    if (username is None) != (password is None):
        raise options.error("password" if password is None else "username",
                            "username and password go together for basic auth; set both")
    if api_key is not None and username is not None:
        raise options.error("api_key", "set either api_key or username/password, not both")
    ca_certs = options.path_value(CA_CERTS, None)  # None: the system's
    client_cert = options.path_value(CLIENT_CERT)
    client_key = options.path_value(CLIENT_KEY)
    for key, path in (("ca_certs", ca_certs), ("client_cert", client_cert),
                      ("client_key", client_key)):
        if path is not None and not path.is_file():
            raise options.error(key, f"file {path} does not exist")
    client = ClientSettings(
        hosts=tuple(hosts),
        api_key=api_key,
        username=username,
        password=password,
        verify_certs=options.boolean(VERIFY_CERTS),
        ca_certs=str(ca_certs) if ca_certs else None,
        client_cert=str(client_cert) if client_cert else None,
        client_key=str(client_key) if client_key else None,
        request_timeout=options.number(REQUEST_TIMEOUT),
        hosts_key=options.key_path("hosts"),
    )
    index = options.string(INDEX)
    try:
        index.format(schema="s", table="t")
    except (KeyError, IndexError, ValueError) as exc:
        raise options.error(
            "index", f"bad template {index!r} ({exc}); use {{schema}} and {{table}} only"
        ) from None
    indices = options.table(INDICES)
    for table, name in indices.items():
        if not isinstance(name, str) or not name:
            raise options.error(f"indices.{table}", "must be an index or alias name string")
    tz_name = options.string(TIMEZONE)
    try:
        timezone: tzinfo = UTC if tz_name.upper() == "UTC" else ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise options.error(
            "timezone", f"unknown time zone {tz_name!r}; use an IANA name like 'Europe/Berlin'"
        ) from None
    separator = options.string(ID_SEPARATOR)
    if not separator:
        raise options.error("id_separator", "must not be empty")
    default_rule = TableRule(
        mappings=_json_table(options, MAPPINGS), settings=_json_table(options, SETTINGS)
    )
    tables_options = options.sub(TABLES)
    tables = {
        name: _table_rule(tables_options.sub(name), default_rule)
        for name in list(tables_options.data)
    }
    tables_options.done()
    settings = SinkSettings(
        client=client,
        label=label,
        index=index,
        indices=dict(indices),
        tables=tables,
        default_rule=default_rule,
        versioning=options.choice(VERSIONING) == "external",
        decimal=options.choice(DECIMAL),
        timezone=timezone,
        id_separator=separator,
        bulk_actions=options.integer(BULK_ACTIONS),
        bulk_bytes=options.integer(BULK_BYTES),
        refresh=options.choice(REFRESH),
        create_indices=options.boolean(CREATE_INDICES),
        rewrite_renamed=options.choice(RENAMED_COLUMNS) == "rewrite",
        rewrite_dropped=options.choice(DROPPED_COLUMNS) == "rewrite",
    )
    for key, rewrite in (("renamed_columns", settings.rewrite_renamed),
                         ("dropped_columns", settings.rewrite_dropped)):
        shared = _shared_index(index, indices) if rewrite else None
        if shared:
            raise options.error(key, f'"rewrite" needs each table in an index of its own (a '
                                f'document does not record its table), but {shared}; use '
                                '"keep", or give each table its own index')
    options.done()
    return settings


def _shared_index(template: str, indices: dict[str, Any]) -> str | None:
    """How the config may put several tables in one index, or ``None``."""
    owners: dict[str, str] = {}
    for table, name in indices.items():
        if "." not in table:
            return f"indices entry {table!r} is a bare table name (it matches every schema)"
        if name.lower() in owners:
            return f"indices {owners[name.lower()]} and {table} share {name.lower()!r}"
        owners[name.lower()] = table
    for placeholder in ("{schema}", "{table}"):
        if placeholder not in template:
            return f"the index template {template!r} lacks {placeholder}"
    return None


def _table_rule(options: Options, default: TableRule) -> TableRule:
    include_spec, exclude_spec, rename_spec, pk_spec, mappings_spec, settings_spec = (
        TABLE_OPTIONS)
    include = options.string_list(include_spec)
    exclude = options.string_list(exclude_spec)
    if include is not None and exclude:
        raise options.error("exclude", "set include or exclude, not both")
    rename = options.table(rename_spec)
    for column, target in rename.items():
        if not isinstance(target, str) or not target:
            raise options.error(f"rename.{column}", "must be the new field name (a string)")
    pk_columns = options.string_list(pk_spec)
    mappings = _json_table(options, mappings_spec)
    table_settings = _json_table(options, settings_spec)
    merged_settings = (
        {**(default.settings or {}), **table_settings} if table_settings is not None
        else default.settings
    )
    rule = TableRule(
        include=tuple(include) if include is not None else None,
        exclude=frozenset(exclude),
        rename=dict(rename),
        pk_columns=tuple(pk_columns) if pk_columns else None,
        mappings=mappings if mappings is not None else default.mappings,
        settings=merged_settings,
    )
    options.done()
    return rule


def _json_table(options: Options, spec: OptionSpec) -> dict[str, Any] | None:
    """A table given inline, or a string naming a JSON file (relative to the config file).

    A file may hold the bare object or wrap it as ``{"mappings": {...}}`` /
    ``{"settings": {...}}`` (the shape ``GET index/_mapping`` prints)."""
    key = spec.name
    raw = options.data.get(key)
    if raw is None:
        options.get(spec, dict)
        return None
    if isinstance(raw, str):
        path = options.path_value(spec)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise options.error(key, f"cannot read {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise options.error(key, f"{path} is not valid JSON: {exc}") from None
        if isinstance(loaded, dict) and set(loaded) == {key}:
            loaded = loaded[key]
        if not isinstance(loaded, dict):
            raise options.error(key, f"{path} must hold a JSON object")
        return loaded
    return dict(options.table(spec))
