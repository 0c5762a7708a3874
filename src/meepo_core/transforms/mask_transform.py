"""``mask``: replace column values by a fixed string, NULL, or a partly hidden value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from ..options import Computed, Options, OptionSpec
from .columns import COLUMNS, ColumnList, ColumnValueTransform, SourceNames

MODES = ("fixed", "null", "partial")
MODE = OptionSpec(
    "mode", "string", "fixed",
    '`"fixed"`: each value becomes `value`; `"null"`: NULL; `"partial"`: the first '
    "`keep_first` and last `keep_last` characters of the value's text stay, the others "
    "become `char`, keeping the length (a value no longer than both is hidden whole). NULL "
    "and unchanged values stay as they are in every mode.", choices=MODES)
VALUE = OptionSpec("value", "string", Computed('`"****"`'),
                   'What each value becomes with `mode = "fixed"`.')
KEEP_FIRST = OptionSpec("keep_first", "integer", Computed("`0`"),
                        'Characters kept at the start, with `mode = "partial"`.', minimum=0)
KEEP_LAST = OptionSpec("keep_last", "integer", Computed("`0`"),
                       'Characters kept at the end, with `mode = "partial"`.', minimum=0)
CHAR = OptionSpec("char", "string", Computed('`"*"`'),
                  'The one character hidden ones become, with `mode = "partial"`.')


class MaskTransform(ColumnValueTransform):
    """``{ type = "mask", columns = ["shop.users.phone"], mode = "partial", keep_last = 4 }``.

    ``mode = "fixed"`` (the default) replaces each value by ``value`` (default
    ``"****"``); ``"null"`` by NULL; ``"partial"`` keeps the first ``keep_first`` and last
    ``keep_last`` characters of the value's text and replaces the others by ``char``
    (default ``"*"``), keeping its length. NULL stays NULL and an ``UNCHANGED`` value stays
    ``UNCHANGED`` in every mode (neither reveals anything).
    """

    OPTIONS = (COLUMNS, MODE, VALUE, KEEP_FIRST, KEEP_LAST, CHAR)

    @classmethod
    def from_options(cls, options: Options) -> Self:
        columns = ColumnList.from_options(options)
        mode = options.choice(MODE)
        # None: not given (an option of another mode is an error); defaults applied below
        value = options.string(VALUE, None)
        keep_first = options.integer(KEEP_FIRST, None)
        keep_last = options.integer(KEEP_LAST, None)
        char = options.string(CHAR, None)
        extra: dict[str, object] = {"value": value} if mode != "fixed" else {}
        extra.update({} if mode == "partial" else {
            "keep_first": keep_first, "keep_last": keep_last, "char": char})
        for key, given in extra.items():
            if given is not None:
                raise options.error(key, f"does not apply to mode = {mode!r}")
        if char is not None and len(char) != 1:
            raise options.error("char", f"must be one character, not {char!r}")
        options.done()
        if mode == "null":
            transform = cls(columns, lambda _value: None)
            transform.fixed = None
        elif mode == "partial":
            transform = cls(columns, partial_mask(keep_first or 0, keep_last or 0, char or "*"))
            transform.partial = (keep_first or 0, keep_last or 0, char or "*")
        else:
            fixed = "****" if value is None else value
            transform = cls(columns, lambda _value: fixed)
            transform.fixed = fixed
        return transform

    #: What ``replace`` does, for compiled chains: the fixed value (``mode = "fixed"`` or
    #: ``"null"``), or ``(keep_first, keep_last, char)`` (``"partial"``).
    fixed: str | None = "****"
    partial: tuple[int, int, str] | None = None

    def value_lines(self, names: SourceNames) -> list[str] | None:
        if type(self).value_lines is not MaskTransform.value_lines:
            return None
        if self.partial is None:
            return [f"value = {self.fixed!r}"]
        first, last, char = self.partial
        # partial_mask(first, last, char), spelled out
        kept = [f"text[:{first}]"] if first else []
        kept.append(f"{char!r} * hidden")
        kept += [f"text[len(text) - {last}:]"] if last else []
        return ["text = value if value.__class__ is str else str(value)",
                f"hidden = len(text) - {first + last}",
                f"value = {' + '.join(kept)} if hidden > 0 else {char!r} * len(text)"]


def partial_mask(keep_first: int, keep_last: int, char: str) -> Callable[[Any], str]:
    """A function hiding all but the first ``keep_first`` and last ``keep_last``
    characters of a value's text; a value no longer than both together is hidden whole."""
    def mask(value: Any) -> str:
        text = value if isinstance(value, str) else str(value)
        hidden = len(text) - keep_first - keep_last
        if hidden <= 0:
            return char * len(text)
        return text[:keep_first] + char * hidden + (text[len(text) - keep_last:])
    return mask
