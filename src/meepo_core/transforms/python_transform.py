"""``python``: a user's own function as a transform."""

from __future__ import annotations

import importlib
import operator
import sys
from collections.abc import Callable
from typing import Self

from ..events import RowEvent
from ..options import REQUIRED, Options, OptionSpec
from .base import Transform, TransformResult

CALLABLE = OptionSpec(
    "callable", "string", REQUIRED,
    '`"package.module:function"`: `function(event)` returns the event, `None` or a list of '
    "events, as `Transform.apply` does; imported at config load (the config file's "
    "directory is importable).")


class PythonTransform(Transform):
    """``{ type = "python", callable = "package.module:function" }``: ``function(event)``
    returns the event (changed with :func:`meepo_core.derive`, or not), ``None`` to drop
    it, or a list of events, as :meth:`Transform.apply` does. The module is imported when
    the config is loaded (the config file's directory is importable); an import error is a
    config error naming the key. What the function raises on an event sends that event to
    the dead-letter store."""

    OPTIONS = (CALLABLE,)

    def __init__(self, function: Callable[[RowEvent], TransformResult]) -> None:
        self.function = function

    @classmethod
    def from_options(cls, options: Options) -> Self:
        target = options.string(CALLABLE)
        module, colon, attribute = target.partition(":")
        if not colon or not module or not attribute:
            raise options.error("callable", f"{target!r} must be package.module:function")
        base = str(options.base_dir)
        if base not in sys.path:
            sys.path.append(base)
        try:
            function = operator.attrgetter(attribute)(importlib.import_module(module))
        except Exception as exc:
            raise options.error("callable", f"cannot import {target!r}: "
                                f"{type(exc).__name__}: {exc}") from None
        if not callable(function):
            raise options.error("callable", f"{target!r} is not callable")
        options.done()
        return cls(function)

    def for_table(self, schema: str, table: str) -> Callable[[RowEvent], TransformResult]:
        return self.function

    def apply(self, event: RowEvent) -> TransformResult:
        return self.function(event)
