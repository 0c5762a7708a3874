"""Key templates such as ``user:email:{email}``, filled from a row image."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meepo_core import UNCHANGED

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be filled from an image (a column it names is absent)."""

    def __init__(self, column: str) -> None:
        super().__init__(column)
        self.column = column


@dataclass(frozen=True)
class Template:
    """A ``str.format``-style template whose fields are column names (format specs allowed,
    e.g. ``{id:08d}``). ``path`` is the config key path it came from, for errors."""

    text: str
    path: str
    parts: tuple[tuple[str, str | None, str | None, str | None], ...]

    @classmethod
    def parse(cls, text: str, path: str) -> Template:
        """Parse ``text``; ``ValueError`` for a malformed template or a positional field."""
        parts = tuple(_FORMATTER.parse(text))
        for _, field, _, _ in parts:
            if field is not None and (field == "" or field.isdigit()):
                raise ValueError(
                    f"{text!r} has a positional field {{{field}}}; name a column, e.g. {{id}}"
                )
        return cls(text, path, parts)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(field for _, field, _, _ in self.parts if field is not None)

    def missing(self, image: Mapping[str, Any]) -> str | None:
        """The first column this template needs that ``image`` lacks or holds as
        :data:`~meepo_core.UNCHANGED` (a value the source did not send), else ``None``."""
        for column in self.columns:
            if image.get(column, UNCHANGED) is UNCHANGED:
                return column
        return None

    def render(self, image: Mapping[str, Any]) -> str | None:
        """The key for ``image``; ``None`` when a column it uses is NULL (no cache entry can
        be keyed by a NULL). Raises :class:`TemplateError` for an absent or
        :data:`~meepo_core.UNCHANGED` column, and ``ValueError`` / ``TypeError`` for a
        value its format spec does not fit (``{id:d}`` of a string)."""
        out: list[str] = []
        for literal, field, spec, conversion in self.parts:
            out.append(literal)
            if field is None:
                continue
            value = image.get(field, UNCHANGED)
            if value is UNCHANGED:
                raise TemplateError(field)
            if value is None:
                return None
            if isinstance(value, bytes | bytearray | memoryview):
                value = bytes(value).decode("utf-8", "surrogateescape")
            if conversion:
                value = _FORMATTER.convert_field(value, conversion)
            out.append(format(value, spec or ""))
        return "".join(out)
