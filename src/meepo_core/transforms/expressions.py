"""Expressions over events in CEL (the Common Expression Language), for ``filter`` and
``route``: compiled once by the ``common-expression-language`` package (a Rust CEL
implementation), never Python ``eval``.

An expression sees these variables:

* ``schema``, ``table``, ``action`` (``"write"``, ``"update"``, ``"delete"``, ``"read"``);
* ``pk``: the primary key (a value, or a list for a composite key);
* ``before``, ``after``: the row images as maps (``after.tenant``); a missing image (the
  ``before`` of a write, the ``after`` of a delete) is an empty map, so ``has(after.x)``
  is false there while ``after.x`` is an error;
* ``row``: ``after``, or ``before`` for a delete (the newest image);
* ``changed``: the names of the columns the event changed: those whose value differs
  between ``before`` and ``after`` for an update, every column for a write or a delete,
  none for a snapshot ``read`` (``"email" in changed``).

Columns whose value the source did not send (``UNCHANGED``) are absent from the maps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError
from ..events import UNCHANGED, RowEvent

VARIABLES = ("schema", "table", "action", "pk", "before", "after", "row", "changed")
#: Variables that are the same for every event of one table (and action).
TABLE_VARIABLES = frozenset(("schema", "table", "action"))
_SYNTAX = re.compile(r"<input>:(\d+):(\d+): (.*)")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_EMPTY: Mapping[str, Any] = {}


class Expression:
    """One compiled expression. ``variables`` are the event variables it reads; only
    those are handed to CEL per event, and for image variables only the columns the
    expression names when it names them all as ``image.column``."""

    def __init__(self, text: str, key_path: str) -> None:
        self.text = text
        self.key_path = key_path
        import cel  # here, not at module level: it costs 100 ms and 16 MiB to import

        try:
            self.program = cel.compile(text)
        except ValueError as exc:
            raise ConfigError(key_path, _syntax_error(text, str(exc))) from None
        names = set(self.program.variables())
        unknown = sorted(names - set(VARIABLES))
        if unknown:
            line, column = _position(text, unknown[0])
            raise ConfigError(
                key_path, f"unknown name {unknown[0]!r} at {line}:{column} in {text!r}; "
                f"an expression can use {', '.join(VARIABLES)}")
        self.variables = frozenset(names)
        self.table_level = self.variables <= TABLE_VARIABLES
        readers = [(name, _READERS[name]) for name in VARIABLES
                   if name in names and name in _READERS]
        flat = self._flatten(names)
        if flat is not None:
            readers += flat
        else:
            readers += [(name, self._image_reader(name)) for name in ("before", "after", "row")
                        if name in names]
        #: ``context(event)``: the variables of ``event`` the expression reads, built by a
        #: function made for exactly those (this runs once per event).
        self.context = _context_builder(readers)
        #: ``(image, column)`` when the expression reads one column of one image and
        #: otherwise only ``schema``, ``table`` and ``action``: its value per table and
        #: action then depends on that column's value alone (see ``filter``'s memo).
        self.single_column: tuple[str, str] | None = None
        images = [name for name in ("before", "after", "row") if name in names]
        if len(images) == 1 and names - {images[0]} <= TABLE_VARIABLES:
            columns = _named_columns(text, images[0])
            if columns is not None and len(columns) == 1:
                self.single_column = (images[0], next(iter(columns)))

    def _flatten(
        self, names: set[str]
    ) -> list[tuple[str, Callable[[RowEvent], Any]]] | None:
        """Handing CEL a map costs about four times what a plain value costs. When the
        text has no string or bytes literal and no ``has()`` (so every ``image.column``
        in it is a field selection) and reads images only as ``image.column``, compile it
        again with each ``image.column`` as a plain variable, ``__image__column``; the
        readers then give that column's value, and leave it out when the image lacks the
        column (an error, as selecting a missing key is)."""
        text = self.text
        images = [name for name in ("before", "after", "row") if name in names]
        if not images or any(mark in text for mark in ("'", '"', "`", "has(", "__")):
            return None
        selected = {name: _named_columns(text, name) for name in images}
        if any(columns is None for columns in selected.values()):
            return None
        flat_text = text
        for name in images:
            flat_text = re.sub(rf"(?<![\w.]){name}\s*\.\s*({_IDENT})",
                               rf"__{name}__\1", flat_text)
        import cel

        try:
            program = cel.compile(flat_text)
        except ValueError:
            return None
        readers = []
        for name in images:
            for column in sorted(selected[name] or ()):
                readers.append((f"__{name}__{column}", _column_reader(IMAGES[name], column)))
        if set(program.variables()) != {flat for flat, _ in readers} | (names - set(images)):
            return None
        self.program = program
        return readers

    def columns_read(self) -> frozenset[str] | None:
        """Every column whose value the expression can depend on, when it reads the images
        only as ``image.column``; None when it reads an image whole or ``changed`` (which
        depends on every column)."""
        if "changed" in self.variables:
            return None
        found: set[str] = set()
        for image in ("before", "after", "row"):
            if image in self.variables:
                columns = _named_columns(self.text, image)
                if columns is None:
                    return None
                found |= columns
        return frozenset(found)

    def named_columns(self) -> list[str]:
        """The columns the text selects as ``image.column`` (any image), sorted."""
        return sorted({column for name in ("before", "after", "row")
                       for column in _named_columns(self.text, name, partial=True) or ()})

    def execute(self, event: RowEvent) -> Any:
        """The expression's value for ``event``; a CEL error names the expression and, for
        a column the event lacks, the column as the user wrote it."""
        try:
            return self.program.execute(self.context(event))
        except Exception as exc:
            message = _first_sentence(str(exc))
            for flat in re.findall(r"__(before|after|row)__(\w+)", message):
                message = message.replace(f"__{flat[0]}__{flat[1]}", f"{flat[0]}.{flat[1]}")
            message = message.replace("Undefined variable or function", "No such column")
            if isinstance(exc, KeyError):  # a missing key of a map the expression selects
                raise LookupError(f"No such column: {message} (in {self.text!r})") from None
            try:
                error = type(exc)(f"{message} (in {self.text!r})")
            except Exception:  # an exception type with other constructor arguments
                error = ValueError(f"{message} (in {self.text!r})")
            raise error from None

    def check(self, result_type: type, type_name: str) -> None:
        """For an expression that reads only ``schema``, ``table`` and ``action``, evaluate
        it once on sample values now, so that a type error (``table > 1``) or a result of
        the wrong type is a config error rather than a dead letter per event. Expressions
        over row values are checked as events come."""
        if not self.table_level:
            return
        try:
            result = self.program.execute({"schema": "s", "table": "t", "action": "write"})
        except Exception as exc:
            raise ConfigError(self.key_path, f"type error in {self.text!r}: "
                              f"{_first_sentence(str(exc))}") from None
        if not isinstance(result, result_type):
            raise ConfigError(self.key_path, f"{self.text!r} gives {type(result).__name__}, "
                              f"not {type_name}")

    def evaluate(self, event: RowEvent) -> Any:
        return self.program.execute(self.context(event))

    def evaluate_table(self, schema: str, table: str, action: str) -> Any:
        """The value of a table-level expression (see :attr:`table_level`)."""
        return self.program.execute({"schema": schema, "table": table, "action": action})

    def _image_reader(self, name: str) -> Callable[[RowEvent], Mapping[str, Any]]:
        columns = _named_columns(self.text, name)
        image = IMAGES[name]
        if columns is None:
            def whole(event: RowEvent) -> Mapping[str, Any]:
                found = image(event)
                if not found:
                    return _EMPTY
                return {k: v for k, v in found.items() if v is not UNCHANGED}
            return whole
        if len(columns) == 1:  # the common case, spelled out: this runs per event
            (column,) = columns

            def one(event: RowEvent) -> Mapping[str, Any]:
                found = image(event)
                value = found.get(column, UNCHANGED) if found else UNCHANGED
                return _EMPTY if value is UNCHANGED else {column: value}
            return one
        named = tuple(columns)

        def narrowed(event: RowEvent) -> Mapping[str, Any]:
            found = image(event)
            if not found:
                return _EMPTY
            return {c: found[c] for c in named if c in found and found[c] is not UNCHANGED}
        return narrowed


def changed_columns(event: RowEvent) -> list[str]:
    """The ``changed`` variable: see the module docstring."""
    before, after = event.before, event.after
    if event.action == "update" and before is not None and after is not None:
        return [c for c, v in after.items()
                if v is not UNCHANGED and (c not in before or before[c] != v)]
    if event.action == "read":
        return []
    return list(event.row)


IMAGES: dict[str, Callable[[RowEvent], Mapping[str, Any] | None]] = {
    "before": lambda event: event.before,
    "after": lambda event: event.after,
    "row": lambda event: event.after if event.after is not None else event.before,
}
_READERS: dict[str, Callable[[RowEvent], Any]] = {
    "schema": lambda event: event.schema,
    "table": lambda event: event.table,
    "action": lambda event: event.action,
    "pk": lambda event: list(event.pk) if isinstance(event.pk, tuple) else event.pk,
    "changed": lambda event: changed_columns(event),
}


def _column_reader(
    image: Callable[[RowEvent], Mapping[str, Any] | None], column: str
) -> Callable[[RowEvent], Any]:
    """The value of ``column`` in ``image``; :data:`_MISSING` when absent or unchanged."""
    def read(event: RowEvent) -> Any:
        found = image(event)
        value = found.get(column, _MISSING) if found else _MISSING
        return _MISSING if value is UNCHANGED else value
    return read


#: A value a reader could not give: the variable is left out of the context (CEL then
#: reports it undefined, an error as selecting a missing key is).
_MISSING: Any = object()


def _context_builder(
    readers: list[tuple[str, Callable[[RowEvent], Any]]],
) -> Callable[[RowEvent], dict[str, Any]]:
    def complete(context: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in context.items() if v is not _MISSING}
    if len(readers) == 1:
        ((name, read),) = readers

        def one(event: RowEvent) -> dict[str, Any]:
            value = read(event)
            return {} if value is _MISSING else {name: value}
        return one
    if len(readers) == 2:
        (first, read_first), (second, read_second) = readers

        def two(event: RowEvent) -> dict[str, Any]:
            context = {first: read_first(event), second: read_second(event)}
            return complete(context) if _MISSING in context.values() else context
        return two

    def many(event: RowEvent) -> dict[str, Any]:
        context = {name: read(event) for name, read in readers}
        return complete(context) if _MISSING in context.values() else context
    return many


def _named_columns(text: str, name: str, *, partial: bool = False) -> set[str] | None:
    """The columns of image ``name`` that ``text`` reads, when it reads the image only as
    ``name.column`` (then only those columns need converting per event); else None, or
    with ``partial`` those it reads that way."""
    every = len(re.findall(rf"(?<![\w.]){name}\b", text))
    dotted = re.findall(rf"(?<![\w.]){name}\s*\.\s*({_IDENT})", text)
    if every != len(dotted) and not partial:
        return None
    return set(dotted)


def _position(text: str, name: str) -> tuple[int, int]:
    """``(line, column)``, 1-based, of the first use of identifier ``name`` in ``text``."""
    match = re.search(rf"(?<![\w.]){re.escape(name)}\b", text)
    offset = match.start() if match else 0
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _syntax_error(text: str, message: str) -> str:
    """CEL's parser message as one line with its position: ``syntax error at 1:11: ...``."""
    match = _SYNTAX.search(message)
    if match is None:
        return f"cannot compile {text!r}: {_first_sentence(message)}"
    line, column, detail = match.groups()
    detail = detail.removeprefix("Syntax error: ")
    return f"syntax error at {line}:{column} in {text!r}: {detail}"


def _first_sentence(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else message
    return first.split(". ")[0].rstrip(".")
