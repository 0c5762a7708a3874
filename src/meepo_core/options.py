"""Typed access to one config table, with errors that name the full key path."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from .errors import ConfigError

T = TypeVar("T")
_REQUIRED: Any = object()

_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "an array",
    dict: "a table",
}


@dataclass(frozen=True)
class ServerURL:
    """A server address read by :meth:`Options.server_url`; user, password and database are
    percent-decoded, ``database`` is ``""`` when the URL names none."""

    scheme: str
    host: str
    port: int
    user: str
    password: str
    database: str
    query: str


class Options:
    """The options of one source, sink or pipeline, read one key at a time.

    Every getter records the key as known; :meth:`done` then rejects any key nobody
    asked for, so a typo like ``urll`` is an error instead of a silently ignored option.
    ``path`` is the table's key path (``tool.meepo.pipelines.orders.sinks[1]``) and
    ``base_dir`` the directory that relative paths in it are resolved against.
    """

    def __init__(self, data: Mapping[str, Any], path: str, base_dir: Path) -> None:
        self.data = data
        self.path = path
        self.base_dir = base_dir
        self._known: set[str] = {"type"}

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> ConfigError:
        """A :class:`ConfigError` for ``key`` of this table, for checks done by the caller."""
        return ConfigError(self.key_path(key), message)

    def get(self, key: str, kind: type[T], default: Any = _REQUIRED) -> T:
        """The value of ``key``, checked to be of ``kind``; ``default`` when absent.

        Without a default, a missing key is a ``required`` error. Integers are accepted
        where a float is asked for.
        """
        self._known.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise self.error(key, "required")
            return default  # type: ignore[no-any-return]
        value = self.data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.error(
                key, f"must be {_KIND_NAMES.get(kind, kind.__name__)}, not {_describe(value)}"
            )
        return value  # type: ignore[no-any-return]

    def string(self, key: str, default: Any = _REQUIRED) -> str:
        return self.get(key, str, default)

    def integer(self, key: str, default: Any = _REQUIRED, *, minimum: int | None = None) -> int:
        value = self.get(key, int, default)
        if minimum is not None and value is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, not {value}")
        return value

    def number(self, key: str, default: Any = _REQUIRED, *, minimum: float | None = None) -> float:
        value = self.get(key, float, default)
        if minimum is not None and value is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, not {value}")
        return value

    def boolean(self, key: str, default: Any = _REQUIRED) -> bool:
        return self.get(key, bool, default)

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _REQUIRED) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return value

    def string_list(self, key: str, default: Any = _REQUIRED) -> list[str]:
        """An array of strings; a single string is accepted as a one-item list."""
        value = self.data.get(key) if key in self.data else None
        if isinstance(value, str):
            self._known.add(key)
            return [value]
        items = self.get(key, list, default)
        if items is None:
            return items
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise self.error(f"{key}[{index}]", f"must be a string, not {_describe(item)}")
        return list(items)

    def table(self, key: str, default: Any = _REQUIRED) -> dict[str, Any]:
        return self.get(key, dict, default)

    def path_value(self, key: str, default: Any = _REQUIRED) -> Path:
        """A filesystem path, resolved against the config file's directory."""
        value: Any = self.get(key, str, default)
        if value is None:
            return value  # type: ignore[return-value]
        return (self.base_dir / Path(value).expanduser()).resolve()

    def server_url(
        self, key: str, *, schemes: tuple[str, ...], default_port: int, example: str
    ) -> ServerURL:
        """The string ``key`` read as ``SCHEME://USER[:PASSWORD]@HOST[:PORT][/DATABASE][?QUERY]``
        with one of ``schemes``; a malformed URL, another scheme, no host or no user is an
        error ending with ``example`` (say ``"write mysql://USER:PASSWORD@HOST:PORT"``)."""
        text = self.string(key)
        try:
            parts = urlsplit(text)
            port = parts.port or default_port
        except ValueError as exc:
            raise self.error(key, f"not a valid DSN ({exc}); {example}") from None
        if parts.scheme not in schemes:
            allowed = " or ".join(f"{scheme}://" for scheme in schemes)
            raise self.error(key, f"scheme must be {allowed}, not {parts.scheme!r}; {example}")
        if not parts.hostname:
            raise self.error(key, f"has no host; {example}")
        if not parts.username:
            raise self.error(key, f"has no user; {example}")
        return ServerURL(
            scheme=parts.scheme, host=parts.hostname, port=port,
            user=unquote(parts.username), password=unquote(parts.password or ""),
            database=unquote(parts.path.lstrip("/")), query=parts.query,
        )

    def sub(self, key: str) -> Options:
        """Options for the nested table ``key`` (empty when absent)."""
        return Options(self.table(key, {}), self.key_path(key), self.base_dir)

    def done(self) -> None:
        """Reject keys that no getter asked for."""
        unknown = sorted(set(self.data) - self._known)
        if unknown:
            valid = sorted(self._known - {"type"})
            close = difflib.get_close_matches(unknown[0], valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(valid) or "none"
            raise self.error(unknown[0], f"unknown option; {hint}valid options here: {known}")


def _describe(value: Any) -> str:
    names = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }
    return f"{names.get(type(value), type(value).__name__)} ({value!r})"[:80]
