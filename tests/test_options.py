"""``Options`` getters that plugins share: server URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from meepo_core import ConfigError, Options
from meepo_core.options import ServerURL

EXAMPLE = "write db://USER@HOST"


def server_url(text: str) -> ServerURL:
    options = Options({"dsn": text}, "source", Path("."))
    return options.server_url("dsn", schemes=("db", "database"), default_port=1234,
                              example=EXAMPLE)


def test_server_url_decodes_user_password_and_database() -> None:
    assert server_url("database://r%40pl:p%3Ass%2Fw@db.example:99/sh%20op?sslmode=x") == (
        ServerURL(scheme="database", host="db.example", port=99, user="r@pl",
                  password="p:ss/w", database="sh op", query="sslmode=x"))


def test_server_url_defaults_the_port_and_leaves_missing_parts_empty() -> None:
    url = server_url("db://u@h")
    assert (url.port, url.password, url.database, url.query) == (1234, "", "", "")


@pytest.mark.parametrize(("text", "message"), [
    ("other://u@h", "source.dsn: scheme must be db:// or database://, not 'other'; " + EXAMPLE),
    ("db://h", "source.dsn: has no user; " + EXAMPLE),
    ("db://u@:5", "source.dsn: has no host; " + EXAMPLE),
    ("db://u@h:99999", "source.dsn: not a valid DSN (Port out of range 0-65535); " + EXAMPLE),
])
def test_server_url_errors_name_the_key_and_show_the_example(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        server_url(text)
    assert str(caught.value) == message
