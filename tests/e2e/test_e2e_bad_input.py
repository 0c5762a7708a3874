"""Bad input to a real pipeline (``mysql`` source; ``redis``, ``elasticsearch`` and ``sql``
sinks), through the real ``meepo`` CLI.

Every case gets exactly one ``meepo: error:`` line naming the key or server setting and the
fix, the documented exit code (2 for config and usage, 1 at runtime), no traceback, and
leaves every side as it was: the cache keys are still there, the ES index was not created,
the SQL replica is empty, and the checkpoint is absent, unchanged, or at most the resolved
start (never past an event that was not applied).

Core-level cases are in ``tests/test_config_errors.py`` and are not repeated here: malformed
TOML, an unknown sink type whose plugin is disabled, an unknown source type, a missing
``sinks`` or required key of a built-in type, a wrong-type pipeline key, a misspelled
option, unset ``${ENV}`` variables, unknown checkpoint schemes and a checkpoint file that is
not JSON.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from meepo_e2e_kit import (
    ITEMS_DDL,
    binlog_end,
    es_index_exists,
    new_database,
    pg_rows,
    present_keys,
    read_checkpoint,
    require_plugins,
    seed_keys,
    sinks,
    source,
    wait_until,
)
from meepo_testkit.servers import RedisServer, free_port

from meepo_core.testing import run_meepo, write_config

require_plugins()

NAME = "bad"
PATH = f"tool.meepo.pipelines.{NAME}"
#: Runner retries kept short so runtime failures surface in a second, not minutes.
FAST_RETRIES = {"max_retries": 2, "retry_backoff": 0.05, "retry_backoff_max": 0.1}
FAST_ES = {"request_timeout": 5}


def one_error_line(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The single ``meepo: error:`` line, after checking the exit code, that there is no
    traceback, and that every fragment is in it."""
    stderr = result.stderr
    assert result.returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("meepo: error:")]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    return errors[0]


@dataclass
class Stack:
    """A table with three committed rows after ``start``, a cache holding their keys, an
    empty SQL replica and no ES index yet; ``pipeline()`` writes a config around them."""

    db: Any
    start: str
    redis_url: str
    es_url: str
    pg_url: str
    prefix: str
    dir: Path

    @property
    def checkpoint(self) -> Path:
        return self.dir / ".meepo" / f"{NAME}.json"

    def pipeline(
        self, change: Callable[[dict[str, Any]], None] | None = None, **settings: Any
    ) -> dict[str, Any]:
        config: dict[str, Any] = {
            "source": source(self.db.server, self.db.name, self.start),
            "sinks": sinks(
                self.db.name, self.redis_url, self.es_url, self.pg_url, self.prefix, **FAST_ES
            ),
            **FAST_RETRIES,
            **settings,
        }
        if change is not None:
            change(config)
        write_config(self.dir, {NAME: config})
        return config

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_meepo(*(args or ("run", NAME, "--once")), cwd=self.dir, timeout=120)

    def assert_untouched(self, checkpoint: Any = "absent") -> None:
        """Nothing written: keys still cached, no index, empty replica, no dead letters;
        the checkpoint is absent (default), equal to ``checkpoint``, or (``"start"``) at
        most the configured start position."""
        assert present_keys(self.redis_url, {1, 2, 3}) == {1, 2, 3}
        assert not es_index_exists(self.es_url, f"{self.prefix}_items")
        assert pg_rows(self.pg_url) == {}
        dead = self.dir / ".meepo" / f"{NAME}.dead.jsonl"
        assert not dead.exists() or dead.read_text() == ""
        if checkpoint == "absent":
            assert not self.checkpoint.exists()
        elif checkpoint == "start":
            saved = read_checkpoint(self.checkpoint)
            file, pos = self.start.split(":")
            assert saved is None or (saved["file"], saved["pos"]) == (file, int(pos)), saved
        else:
            assert self.checkpoint.read_text() == checkpoint


def make_stack(
    db: Any, redis_url: str, es_url: str, pg_url: str, prefix: str, directory: Path
) -> Stack:
    db.execute(ITEMS_DDL)
    start = binlog_end(db.server)
    db.execute("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)")
    seed_keys(redis_url, [1, 2, 3])
    directory.mkdir(exist_ok=True)
    return Stack(db, start, redis_url, es_url, pg_url, prefix, directory)


@pytest.fixture
def stack(
    mysql_db: Any, redis_db: str, es_server: Any, es_prefix: str, pg_url: str, tmp_path: Path
) -> Stack:
    return make_stack(mysql_db, redis_db, es_server.url, pg_url, es_prefix, tmp_path / "app")


@pytest.fixture
def scratch_stack(
    scratch_mariadb: Any, redis_db: str, es_server: Any, es_prefix: str, pg_url: str, tmp_path: Path
) -> Iterator[Stack]:
    """Like ``stack``, on the private MariaDB (for global settings and purged binlogs)."""
    scratch_mariadb.start()
    db = new_database(scratch_mariadb)
    yield make_stack(db, redis_db, es_server.url, pg_url, es_prefix, tmp_path / "app")
    scratch_mariadb.execute(f"DROP DATABASE IF EXISTS `{db.name}`", database=None)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A config change: set ``path`` ("source.dsn", "sinks.1.hosts") to ``value``, or
    delete it when ``value`` is ``DELETE``."""

    def change(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = config
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value

    return change


DELETE = object()


# -- config errors: exit 2, nothing connects -------------------------------------------

CONFIG_CASES = [
    # unknown types, with every plugin installed: the list names the plugin types
    ("source.type", "mysqll", "source.type: unknown source type 'mysqll'; available:", "mysql"),
    (
        "sinks.1.type",
        "elastic",
        "sinks[1].type: unknown sink type 'elastic'; available:",
        "elasticsearch",
    ),
    # missing keys
    ("source.dsn", DELETE, "source.dsn: required", ""),
    ("sinks.0.url", DELETE, "sinks[0].url: required", ""),
    ("sinks.0.keys", DELETE, "sinks[0].keys: required", 'keys = { "shop.users"'),
    ("sinks.1.hosts", DELETE, "sinks[1].hosts: required", ""),
    ("sinks.2.url", DELETE, "sinks[2].url: required", ""),
    # keys of the wrong type
    ("source.tables", 5, "source.tables: must be an array, not an integer (5)", ""),
    ("sinks.0.keys", ["item:{id}"], "sinks[0].keys: must be a table, not an array", ""),
    ("sinks.1.bulk_actions", "many", "sinks[1].bulk_actions: must be an integer", "'many'"),
    ("sinks.2.tables", 3, "sinks[2].tables: must be a table, not an integer (3)", ""),
    # bad DSNs and URLs
    (
        "source.dsn",
        "postgres://meepo@db",
        "source.dsn: scheme must be mysql:// or mariadb://",
        "mysql://USER:PASSWORD@HOST:PORT",
    ),
    (
        "source.dsn",
        "mysql://u:p@db:port",
        "source.dsn: not a valid DSN",
        "mysql://USER:PASSWORD@HOST:PORT",
    ),
    (
        "sinks.0.url",
        "http://cache:6379",
        "sinks[0].url: 'http://cache:6379' is not a Redis URL",
        "redis://127.0.0.1:6379/0",
    ),
    ("sinks.1.hosts", ["es:9200"], "sinks[1].hosts[0]", "http://"),
    ("sinks.2.url", "not a url", "sinks[2].url: not a database URL", "postgresql://user@host/db"),
    (
        "sinks.2.url",
        "oracle://u@db/x",
        "sinks[2].url: dialect 'oracle' has no upsert",
        "postgresql",
    ),
    # a malformed key template
    ("sinks.0.keys", {"x.items": ["item:{}"]}, "has a positional field {}", "name a column"),
]


@pytest.mark.parametrize(
    ("path", "value", "fragment", "fix"),
    CONFIG_CASES,
    ids=[f"{c[0]}={c[1]!r}"[:40] for c in CONFIG_CASES],
)
def test_config_error_names_the_key_and_the_fix(
    stack: Stack, path: str, value: Any, fragment: str, fix: str
) -> None:
    stack.pipeline(_set(path, value))
    # `check` validates through the same code as `run`: asked for a few cases only, as
    # every CLI start costs seconds here.
    commands = [("run", NAME, "--once")] + ([("check", NAME)] if path == "source.type" else [])
    for command in commands:
        line = one_error_line(stack.run(*command), 2, fragment, fix)
        assert line.startswith(f"meepo: error: {PATH}."), line
    stack.assert_untouched()


# -- runtime: the source ---------------------------------------------------------------


def test_unreachable_mysql_names_the_dsn(stack: Stack) -> None:
    stack.pipeline(_set("source.dsn", f"mysql://meepo:meepo@127.0.0.1:{free_port()}"))
    one_error_line(
        stack.run(),
        1,
        "cannot reach MySQL at 127.0.0.1:",
        f"check the host and port in {PATH}.source.dsn",
    )
    stack.assert_untouched()


def test_wrong_mysql_password_names_the_dsn(stack: Stack) -> None:
    server = stack.db.server
    stack.pipeline(_set("source.dsn", f"mysql://meepo:wrong@{server.host}:{server.port}"))
    one_error_line(
        stack.run(),
        1,
        f"cannot log in to MySQL at {server.host}:{server.port} as 'meepo'",
        f"check the user and password in {PATH}.source.dsn",
    )
    check = stack.run("check", NAME)
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert f"check the user and password in {PATH}.source.dsn" in check.stderr
    stack.assert_untouched()


def test_binlog_not_in_row_format_names_the_setting(scratch_stack: Stack) -> None:
    server = scratch_stack.db.server
    server.execute("SET GLOBAL binlog_format = 'STATEMENT'", database=None)
    try:
        scratch_stack.pipeline()
        one_error_line(
            scratch_stack.run(),
            1,
            "binlog_format is STATEMENT, meepo needs ROW",
            "SET GLOBAL binlog_format = 'ROW'",
            "my.cnf",
        )
        check = scratch_stack.run("check", NAME)
        assert check.returncode == 1
        assert "meepo: source: binlog_format is STATEMENT" in check.stderr
    finally:
        server.execute("SET GLOBAL binlog_format = 'ROW'", database=None)
    scratch_stack.assert_untouched()


def test_source_table_that_does_not_exist(stack: Stack) -> None:
    """Following a table that does not exist delivers nothing and must say so."""
    missing = f"{stack.db.name}.no_such_table"
    stack.pipeline(_set("source.tables", [missing]))
    check = stack.run("check", NAME)
    assert check.returncode == 1, check.stdout + check.stderr
    assert missing in check.stderr and f"{PATH}.source.tables[0]" in check.stderr
    one_error_line(stack.run(), 1, missing, f"{PATH}.source.tables[0]")
    stack.assert_untouched("start")


# -- runtime: the sinks ----------------------------------------------------------------


def _first(index: int) -> Callable[[dict[str, Any]], None]:
    """Move sink ``index`` to the front, so it fails before the others apply anything."""

    def change(config: dict[str, Any]) -> None:
        config["sinks"].insert(0, config["sinks"].pop(index))

    return change


def test_template_naming_a_missing_column_stops_before_writing(stack: Stack) -> None:
    stack.pipeline(_set("sinks.0.keys", {f"{stack.db.name}.items": ["item:{sku}"]}))
    one_error_line(
        stack.run(),
        1,
        f"{PATH}.sinks[0].keys.\"{stack.db.name}.items\"[0]: template 'item:{{sku}}' uses "
        f"column 'sku', which the after image of {stack.db.name}.items lacks (its columns: "
        "id, name, qty); fix the template",
        "stopped without checkpointing this batch",
    )
    stack.assert_untouched("start")


@pytest.mark.parametrize(
    ("index", "key", "value", "fragments"),
    [
        (0, "url", "redis://127.0.0.1:{port}/0", ["sinks[0] redis", "127.0.0.1:{port}"]),
        (1, "hosts", ["http://127.0.0.1:{port}"], ["sinks[0] elasticsearch", "Connection error"]),
        (
            2,
            "url",
            "postgresql+psycopg://postgres@127.0.0.1:{port}/x",
            ["sinks[0] sql", "127.0.0.1"],
        ),
    ],
    ids=["redis", "elasticsearch", "sql"],
)
def test_unreachable_sink(
    stack: Stack, index: int, key: str, value: Any, fragments: list[str]
) -> None:
    port = free_port()
    filled = (
        [v.format(port=port) for v in value] if isinstance(value, list) else value.format(port=port)
    )

    def change(config: dict[str, Any]) -> None:
        config["sinks"][index][key] = filled
        _first(index)(config)

    stack.pipeline(change)
    one_error_line(
        stack.run(),
        1,
        *(f.format(port=port) for f in fragments),
        "still failing after 3 attempts",
        "checkpoint kept",
    )
    check = stack.run("check", NAME)
    assert check.returncode == 1 and "Traceback" not in check.stderr
    problems = [line for line in check.stderr.splitlines() if line.startswith("meepo: sinks[0]")]
    assert len(problems) == 1 and "cannot reach" in problems[0], check.stderr
    stack.assert_untouched("start")


def test_unreachable_es_names_the_host_and_key(stack: Stack) -> None:
    port = free_port()

    def change(config: dict[str, Any]) -> None:
        config["sinks"][1]["hosts"] = [f"http://127.0.0.1:{port}"]
        _first(1)(config)

    stack.pipeline(change)
    one_error_line(stack.run(), 1, f"127.0.0.1:{port}", f"{PATH}.sinks[0].hosts")


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "auth-redis") as server:
        server.send("CONFIG", "SET", "requirepass", "s3cret")
        yield server


def _retried(stderr: str, label: str) -> bool:
    return f"WARNING meepo.delivery: {label} failed (attempt 1" in stderr


def test_wrong_redis_password_is_not_retried_and_names_the_url(
    stack: Stack, redis_with_password: RedisServer
) -> None:
    url = f"redis://:wrong@127.0.0.1:{redis_with_password.port}/0"
    stack.redis_url = url.replace("wrong", "s3cret")
    seed_keys(stack.redis_url, [1, 2, 3])
    stack.pipeline(_set("sinks.0.url", url))
    result = stack.run()
    one_error_line(result, 1, "sinks[0] redis", "AuthenticationError", f"{PATH}.sinks[0].url")
    assert not _retried(result.stderr, "sinks[0] redis"), result.stderr
    stack.assert_untouched("start")


def test_wrong_sql_credentials_are_not_retried_and_name_the_url(stack: Stack) -> None:
    """A MariaDB replica target with a wrong password (PostgreSQL here trusts everyone)."""
    server = stack.db.server
    url = f"mysql+pymysql://meepo:wrong@{server.host}:{server.port}/{stack.db.name}"

    def change(config: dict[str, Any]) -> None:
        config["sinks"][2]["url"] = url
        _first(2)(config)

    stack.pipeline(change)
    result = stack.run()
    one_error_line(result, 1, "sinks[0] sql", "Access denied for user 'meepo'",
                   f"{PATH}.sinks[0].url")
    assert not _retried(result.stderr, "sinks[0] sql"), result.stderr
    stack.assert_untouched("start")


def test_missing_sql_target_table(stack: Stack) -> None:
    """A target table that does not exist: ``meepo check`` names it and the fix; ``run``
    records every event as a dead letter instead of losing it."""

    def change(config: dict[str, Any]) -> None:
        config["sinks"] = [
            dict(config["sinks"][2], tables={f"{stack.db.name}.items": "no_such_items"})
        ]

    stack.pipeline(change)
    check = stack.run("check", NAME)
    assert check.returncode == 1 and "Traceback" not in check.stderr
    assert f"target table no_such_items for {stack.db.name}.items does not exist" in check.stderr, (
        check.stderr
    )
    assert "create it" in check.stderr
    done = stack.run()
    assert done.returncode == 0, done.stderr
    dead = [
        json.loads(line)
        for line in (stack.dir / ".meepo" / f"{NAME}.dead.jsonl").read_text().splitlines()
    ]
    assert sorted(d["event"]["pk"] for d in dead) == [1, 2, 3]
    assert all("no_such_items does not exist" in d["error"] for d in dead)


# -- checkpoints -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "position",
    [{"file": 7}, "binlog.000001:4", {"file": "binlog.000001", "pos": 4, "gtid": "zzz"}],
    ids=["file-not-a-string", "a-string", "bad-gtid"],
)
def test_checkpoint_that_is_not_a_mysql_position(stack: Stack, position: Any) -> None:
    stack.pipeline()
    stack.checkpoint.parent.mkdir(parents=True)
    text = json.dumps({"pipeline": NAME, "position": position})
    stack.checkpoint.write_text(text)
    one_error_line(
        stack.run(),
        1,
        "the checkpoint is not a mysql position",
        f"delete it to restart from {PATH}.source.start",
    )
    stack.assert_untouched(text)


def test_checkpoint_naming_a_purged_binlog(scratch_stack: Stack) -> None:
    server = scratch_stack.db.server
    file, pos = scratch_stack.start.split(":")
    server.execute("FLUSH BINARY LOGS", database=None)
    scratch_stack.db.execute("INSERT INTO items VALUES (4, 'd', 4)")
    server.execute("FLUSH BINARY LOGS", database=None)
    newest = server.execute("SHOW MASTER STATUS", database=None)[0][0]

    def purged() -> bool:
        # MariaDB keeps a file until its binlog checkpoint passed it: retry briefly.
        server.execute(f"PURGE BINARY LOGS TO '{newest}'", database=None)
        return file not in [r[0] for r in server.execute("SHOW BINARY LOGS", database=None)]

    wait_until(purged, 20, f"{file} to be purged")
    scratch_stack.pipeline()
    scratch_stack.checkpoint.parent.mkdir(parents=True)
    text = json.dumps({"pipeline": NAME, "position": {"file": file, "pos": int(pos)}})
    scratch_stack.checkpoint.write_text(text)
    one_error_line(
        scratch_stack.run(),
        1,
        "no longer has the binlog to resume from",
        "it was purged",
        "delete the checkpoint and backfill",
    )
    scratch_stack.assert_untouched(text)


def test_corrupt_checkpoint_keeps_every_sink_untouched(stack: Stack) -> None:
    """The core test covers the message; here: nothing reaches any real sink."""
    stack.pipeline()
    stack.checkpoint.parent.mkdir(parents=True)
    stack.checkpoint.write_text("{not json")
    one_error_line(stack.run(), 1, "is corrupt", "delete it")
    stack.assert_untouched("{not json")
    client = redis.Redis.from_url(stack.redis_url)
    assert client.dbsize() == 3
    client.close()
