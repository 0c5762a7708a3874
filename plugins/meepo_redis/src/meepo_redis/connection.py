"""Redis URLs and clients: validated without I/O at config time, connected lazily."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import redis
from redis.client import Pipeline
from redis.connection import parse_url

from meepo_core import REQUIRED, Options, OptionSpec, SinkError, describe_error

#: Refusals that retrying cannot fix: wrong credentials, missing ACL permissions.
REFUSED = (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError,
           redis.exceptions.AuthenticationWrongNumberOfArgsError)

#: Socket timeouts: long enough for a big pipelined batch, short enough to fail visibly.
SOCKET_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0


def check_url(url: str) -> str:
    """``url`` if redis-py can parse it; ``ValueError`` with the fix otherwise (no I/O)."""
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ValueError(
            f"{url!r} is not a Redis URL ({exc}); write e.g. redis://127.0.0.1:6379/0"
        ) from None
    return url


def url_spec(meaning: str) -> OptionSpec:
    """The ``url`` option of a Redis type (required), declared with its ``meaning``."""
    return OptionSpec("url", "string", REQUIRED, meaning)


def url_option(options: Options, key: str | OptionSpec = "url", default: str | None = None
               ) -> str:
    """The Redis URL at ``key`` (a name or its spec), validated; a :class:`ConfigError`
    names the key."""
    url = options.string(key) if default is None else options.string(key, default)
    key = key if isinstance(key, str) else key.name
    try:
        return check_url(url)
    except ValueError as exc:
        raise options.error(key, str(exc)) from None


def pop_query(url: str, name: str) -> tuple[str, str | None]:
    """Remove meepo's own ``?name=value`` from a URL (redis-py would reject it)."""
    parts = urlparse(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    values = query.pop(name, None)
    rest = urlunparse(parts._replace(query=urlencode(query, doseq=True)))
    return rest, values[0] if values else None


def connect(url: str, **kwargs: object) -> redis.Redis:
    """A client for ``url`` (bytes replies). Connects on first command, not here."""
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        **kwargs,
    )


def redact(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    parts = urlparse(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunparse(parts._replace(netloc=netloc))
    return url


def ping_problems(client: redis.Redis, url: str) -> list[str]:
    """``check()`` helper: one line when the server cannot be reached."""
    try:
        client.ping()
    except redis.RedisError as exc:
        return [f"cannot reach Redis at {redact(url)}: {describe_error(exc)}; check url and that "
                "the server is running"]
    finally:
        client.close()
    return []


def execute(pipe: Pipeline, url: str, url_key: str) -> list[Any]:
    """Send ``pipe``. Refused credentials or permissions raise a non-retryable
    :class:`SinkError` naming ``url_key``; other errors propagate and the runner retries."""
    try:
        return pipe.execute()
    except REFUSED as exc:
        raise SinkError(
            f"{url_key}: Redis at {redact(url)} refused the request ({describe_error(exc)}); "
            "fix the user/password in the URL or the user's ACL",
            retryable=False,
        ) from exc
