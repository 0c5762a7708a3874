"""Option validation: every error names the key and the fix, without contacting a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from meepo_postgres import PostgresSource
from meepo_postgres.config import default_name, pipeline_of
from meepo_postgres.positions import WalPosition, format_lsn, parse_lsn

from meepo_core import ConfigError, Options

DSN = "postgresql://repl:secret@db.example:5433/shop"
PATH = "tool.meepo.pipelines.orders.source"


def build(tmp_path: Path, **options: Any) -> PostgresSource:
    return PostgresSource.from_options(
        Options({"type": "postgres", "dsn": DSN, **options}, PATH, tmp_path)
    )


def test_defaults_follow_the_pipeline_name(tmp_path: Path) -> None:
    settings = build(tmp_path).settings
    assert (settings.host, settings.port, settings.database, settings.user) == (
        "db.example", 5433, "shop", "repl"
    )
    assert settings.address == "db.example:5433/shop"
    assert settings.slot_name("ignored") == "meepo_orders"
    assert settings.publication_name("ignored") == "meepo_orders"
    assert settings.start.kind == "latest" and settings.heartbeat == 10.0
    assert default_name("Orders-EU.2") == "meepo_orders_eu_2"
    assert pipeline_of("tool.meepo.pipelines.a.b.source") == "a.b"
    assert pipeline_of("source") is None


@pytest.mark.parametrize(("options", "message"), [
    ({"dsn": "mysql://u@h/db"}, r"source\.dsn: scheme must be postgresql:// or postgres://"),
    ({"dsn": "postgresql://u@h"}, r"source\.dsn: names no database"),
    ({"dsn": "postgresql://h/db"}, r"source\.dsn: has no user"),
    ({"dsn": "postgresql://u@h/db?replication=database"}, r"must not set \?replication="),
    ({"tables": ["orders"]}, r"source\.tables\[0\]: 'orders' must be schema\.table"),
    ({"tables": []}, r"source\.tables: must name at least one table"),
    ({"slot": "Bad-Name"}, r"source\.slot: 'Bad-Name' is not a valid replication slot name"),
    ({"start": "yesterday"}, r"source\.start: 'yesterday' is not \"latest\", \"slot\" or an LSN"),
    ({"heartbeat": 0}, r"source\.heartbeat: must be at least 0\.1"),
    ({"columns": {"public.t": {"hide": ["x"]}}}, r"source\.columns\.public\.t: must be a table"),
    ({"slott": "x"},
     r"source\.slott: unknown option; did you mean 'slot'\? valid options here: .*slot"),
])
def test_bad_options_name_the_key(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PostgresSource.from_options(
            Options({"type": "postgres", "dsn": DSN, **options}, "source", tmp_path)
        )


def test_start_takes_an_lsn(tmp_path: Path) -> None:
    start = build(tmp_path, start="16/B374D848").settings.start
    assert (start.kind, start.lsn) == ("lsn", 0x16B374D848)


def test_positions_round_trip_and_reject_garbage() -> None:
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    checkpoint = WalPosition(0x16B374D848, 42)
    assert WalPosition.from_json(checkpoint.to_json()) == checkpoint
    for bad in ({"file": "binlog.000001", "pos": 4}, {"lsn": "x"}, {"lsn": "0/1", "sequence": -1}):
        with pytest.raises(ValueError):
            WalPosition.from_json(bad)


def test_max_retained_wal_takes_bytes_or_a_postgres_size(tmp_path: Path) -> None:
    assert build(tmp_path).settings.max_retained_wal is None
    assert build(tmp_path, max_retained_wal=4096).settings.max_retained_wal == 4096
    assert build(tmp_path, max_retained_wal="512MB").settings.max_retained_wal == 512 * 2**20
    assert build(tmp_path, max_retained_wal="1GB").settings.max_retained_wal == 2**30
    with pytest.raises(ConfigError, match=r"source\.max_retained_wal: must be a size such as "
                       r"1073741824, \"512MB\" or \"1GB\", not '1 gig'"):
        build(tmp_path, max_retained_wal="1 gig")
    with pytest.raises(ConfigError, match=r"max_retained_wal: must be a size"):
        build(tmp_path, max_retained_wal=0)
