"""Typed access to one config table, with errors that name the full key path, and the
declarations (:class:`OptionSpec`) that each type's options are read through."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from .errors import ConfigError

T = TypeVar("T")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of an option that must be given.
REQUIRED: Any = _Required()
_REQUIRED = REQUIRED

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


class DeclarationError(TypeError):
    """A type's code and its ``OPTIONS`` declaration disagree: a bug in the type, not in a
    user's config."""


@dataclass(frozen=True)
class Computed:
    """The default of an option that ``from_options`` works out itself (from other options,
    the host, ...), described by ``text`` (``"DB.* when dsn names a DB, else *.*"``); the
    code passes the value to the getter as ``default``."""

    text: str


#: The type names an option may be declared with, and the getters that read each.
OPTION_TYPES = {
    "string": ("string", "choice", "server_url", "get"),
    "integer": ("integer", "get"),
    "number": ("number", "get"),
    "boolean": ("boolean", "get"),
    "array of strings": ("string_list", "get"),
    "table": ("table", "sub", "get"),
    "path": ("path_value",),
    "string or table": ("get", "path_value", "table"),
    "integer or string": ("get",),
}


@dataclass(frozen=True)
class OptionSpec:
    """One option of a source, sink or transform type, declared once.

    A type lists its options in its ``OPTIONS`` class attribute; ``from_options`` reads each
    through its spec (``options.string(TEMPLATE)``), which supplies the key, the default,
    ``minimum`` and ``choices``, so the code cannot read an option the declaration does not
    describe. The docs tables and ``meepo plugins --options TYPE`` are generated from the
    same declaration. ``meaning`` is one Markdown paragraph (it becomes a table cell);
    ``options`` declares the keys of a nested table (kafka's ``debezium = { ... }``), or,
    with ``each`` (say ``"TABLE"``), of each table in it (``tables."shop.users" = { ... }``).
    """

    name: str
    type: str
    default: Any
    meaning: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    options: tuple[OptionSpec, ...] = ()
    each: str = ""

    def __post_init__(self) -> None:
        problem = None
        if self.type not in OPTION_TYPES:
            problem = f"type {self.type!r} is not one of {', '.join(OPTION_TYPES)}"
        elif "\n\n" in self.meaning or "|" in self.meaning.replace("\\|", ""):
            problem = "the meaning must be one paragraph without an unescaped '|' (a table cell)"
        elif self.choices and isinstance(self.default, str) and self.default not in self.choices:
            problem = f"the default {self.default!r} is not one of its choices"
        if problem:
            raise DeclarationError(f"option {self.name!r}: {problem}")

    @property
    def shown_default(self) -> str:
        """The default as the docs show it: ``required``, ``none``, the ``Computed`` text,
        or the TOML value in backticks."""
        if self.default is REQUIRED:
            return "required"
        if self.default is None:
            return "none"
        if isinstance(self.default, Computed):
            return self.default.text
        return f"`{toml_value(self.default)}`"


def toml_value(value: Any) -> str:
    """``value`` as it is written in TOML (the inline forms)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return str(value)


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
        #: keys read through an :class:`OptionSpec`, and keys read by bare name
        self._declared: set[str] = set()
        self._undeclared: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> ConfigError:
        """A :class:`ConfigError` for ``key`` of this table, for checks done by the caller."""
        return ConfigError(self.key_path(key), message)

    def allow(self, key: str) -> None:
        """Mark ``key`` as read by someone else (the core reads a transform's ``on_error``),
        so :meth:`done` neither rejects it nor counts it as undeclared."""
        self._known.add(key)

    def _resolve(
        self, key: str | OptionSpec, default: Any, getter: str
    ) -> tuple[str, Any, OptionSpec | None]:
        """``(key, default, spec)`` of one read: by bare name with the given default, or
        through a spec, which supplies the default unless it is :class:`Computed`."""
        if isinstance(key, str):
            if key not in self._declared and key != "type":  # "type" is the core's
                self._undeclared.add(key)
            return key, default, None
        spec = key
        if getter not in OPTION_TYPES[spec.type]:
            raise DeclarationError(f"option {spec.name!r} is declared as {spec.type}, but read "
                                   f"with Options.{getter}")
        if isinstance(spec.default, Computed):
            if default is _REQUIRED:
                raise DeclarationError(f"option {spec.name!r} has a computed default: pass it")
        elif default is not _REQUIRED:
            raise DeclarationError(f"option {spec.name!r}: the default is declared in its "
                                   "OptionSpec; do not pass another")
        else:
            default = spec.default
        self._declared.add(spec.name)
        self._undeclared.discard(spec.name)
        return spec.name, default, spec

    def get(self, key: str | OptionSpec, kind: type[T], default: Any = _REQUIRED) -> T:
        """The value of ``key``, checked to be of ``kind``; ``default`` when absent.

        Without a default, a missing key is a ``required`` error. Integers are accepted
        where a float is asked for. ``key`` may be an :class:`OptionSpec`, which then
        supplies the default (see :meth:`_resolve`).
        """
        key, default, _ = self._resolve(key, default, "get")
        return self._value(key, kind, default)

    def _value(self, key: str, kind: type[T], default: Any) -> T:
        self._known.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise self.error(key, "required")
            # a declared default is shared by every read: hand out copies of containers
            found: Any = copy.deepcopy(default) if isinstance(default, list | dict) else default
            return found  # type: ignore[no-any-return]
        value = self.data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.error(
                key, f"must be {_KIND_NAMES.get(kind, kind.__name__)}, not {_describe(value)}"
            )
        return value  # type: ignore[no-any-return]

    def string(self, key: str | OptionSpec, default: Any = _REQUIRED) -> str:
        key, default, _ = self._resolve(key, default, "string")
        return self._value(key, str, default)

    def integer(
        self, key: str | OptionSpec, default: Any = _REQUIRED, *, minimum: int | None = None
    ) -> int:
        key, default, spec = self._resolve(key, default, "integer")
        if spec is not None and spec.minimum is not None:
            minimum = int(spec.minimum)
        value = self._value(key, int, default)
        if minimum is not None and value is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, not {value}")
        return value

    def number(
        self, key: str | OptionSpec, default: Any = _REQUIRED, *, minimum: float | None = None
    ) -> float:
        key, default, spec = self._resolve(key, default, "number")
        if spec is not None and spec.minimum is not None:
            minimum = spec.minimum
        value = self._value(key, float, default)
        if minimum is not None and value is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, not {value}")
        return value

    def boolean(self, key: str | OptionSpec, default: Any = _REQUIRED) -> bool:
        key, default, _ = self._resolve(key, default, "boolean")
        return self._value(key, bool, default)

    def choice(
        self, key: str | OptionSpec, choices: tuple[str, ...] = (), default: Any = _REQUIRED
    ) -> str:
        """One of ``choices`` (a spec's own ``choices`` when read through one)."""
        key, default, spec = self._resolve(key, default, "choice")
        if spec is not None:
            choices = spec.choices
        if not choices:
            raise DeclarationError(f"option {key!r} is read as a choice but has no choices")
        value = self._value(key, str, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return value

    def string_list(self, key: str | OptionSpec, default: Any = _REQUIRED) -> list[str]:
        """An array of strings; a single string is accepted as a one-item list."""
        key, default, _ = self._resolve(key, default, "string_list")
        value = self.data.get(key) if key in self.data else None
        if isinstance(value, str):
            self._known.add(key)
            return [value]
        items = self._value(key, list, default)
        if items is None:
            return items
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise self.error(f"{key}[{index}]", f"must be a string, not {_describe(item)}")
        return list(items)

    def table(self, key: str | OptionSpec, default: Any = _REQUIRED) -> dict[str, Any]:
        key, default, _ = self._resolve(key, default, "table")
        return self._value(key, dict, default)

    def path_value(self, key: str | OptionSpec, default: Any = _REQUIRED) -> Path:
        """A filesystem path, resolved against the config file's directory."""
        key, default, _ = self._resolve(key, default, "path_value")
        value: Any = self._value(key, str, default)
        if value is None:
            return None  # type: ignore[return-value]  # a default of None
        return (self.base_dir / Path(value).expanduser()).resolve()

    def server_url(
        self, key: str | OptionSpec, *, schemes: tuple[str, ...], default_port: int, example: str
    ) -> ServerURL:
        """The string ``key`` read as ``SCHEME://USER[:PASSWORD]@HOST[:PORT][/DATABASE][?QUERY]``
        with one of ``schemes``; a malformed URL, another scheme, no host or no user is an
        error ending with ``example`` (say ``"write mysql://USER:PASSWORD@HOST:PORT"``)."""
        key, default, _ = self._resolve(key, _REQUIRED, "server_url")
        text = self._value(key, str, default)
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

    def sub(self, key: str | OptionSpec) -> Options:
        """Options for the nested table ``key`` (empty when absent)."""
        if isinstance(key, str):
            return Options(self.table(key, {}), self.key_path(key), self.base_dir)
        key, default, _ = self._resolve(key, _REQUIRED, "sub")
        return Options(self._value(key, dict, default or {}), self.key_path(key), self.base_dir)

    def done(self) -> None:
        """Reject keys that no getter asked for.

        A type that reads some options through their :class:`OptionSpec` must read all of
        them so: one read by bare name is missing from the declaration (and from the docs
        generated from it), a :class:`DeclarationError`.
        """
        if self._declared and self._undeclared:
            raise DeclarationError(
                f"{self.path or 'options'}: read without an OptionSpec: "
                f"{', '.join(sorted(self._undeclared))}; declare them in the type's OPTIONS")
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
