"""``route``: set the destination name sinks write an event to."""

from __future__ import annotations

import string
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Self

from ..events import RowEvent, qualified_name
from ..options import Options, OptionSpec
from .base import EventFunction, TableRoute, Transform, TransformResult, with_destination
from .expressions import Expression

#: The fields a ``to`` template may use.
TEMPLATE_FIELDS = ("schema", "table", "action")
TO = OptionSpec("to", "string", None,
                "The destination's name, a template with `{schema}`, `{table}` and `{action}` "
                "(worked out once per table and action); give `to` or `expression`.")
EXPRESSION = OptionSpec("expression", "string", None,
                        "A CEL expression over the event giving the destination's name "
                        "(see `filter`); give `to` or `expression`.")
TABLES = OptionSpec("tables", "array of strings", ["*"],
                    "`schema.table` globs: the events routed; others pass unchanged.")


class RouteTransform(Transform, TableRoute):
    """``{ type = "route", to = "{schema}_{table}_v2" }`` or ``{ type = "route", expression
    = "'orders_' + string(row.tenant_id)" }``: sets ``event.destination``, which sinks use
    instead of the name they derive from the table (the ``kafka`` sink's topic, the
    ``elasticsearch`` sink's index, the ``sql`` sink's target table). ``to`` may use
    ``{schema}``, ``{table}`` and ``{action}`` and is worked out once per table and action;
    ``expression`` is CEL over the event (see ``filter``) and must give a string. ``tables``
    (``schema.table`` globs, default all) limits the events routed."""

    OPTIONS = (TO, EXPRESSION, TABLES)

    def __init__(self, name: Callable[[RowEvent], str] | None, template: str | None,
                 tables: list[str]) -> None:
        self.name = name
        self.template = template
        self.tables = tables

    @classmethod
    def from_options(cls, options: Options) -> Self:
        template = options.string(TO)
        text = options.string(EXPRESSION)
        tables = options.string_list(TABLES)
        if (template is None) == (text is None):
            raise options.error("to", 'route needs either to = "{schema}_{table}" or '
                                'expression = "..." (one of them)')
        name = None
        if template is not None:
            _check_template(options, template)
        else:
            expression = Expression(text or "", options.key_path("expression"))
            expression.check(str, "a string")
            name = _expression_name(expression)
        options.done()
        return cls(name, template, tables)

    def for_table(self, schema: str, table: str) -> EventFunction | None:
        qualified = qualified_name(schema, table)
        if not any(fnmatchcase(qualified, pattern) for pattern in self.tables):
            return None
        if self.name is not None:
            name = self.name
            return lambda event: with_destination(event, name(event))
        names = self.table_destinations(schema, table)
        return lambda event: with_destination(event, names[event.action])

    def table_destinations(self, schema: str, table: str) -> dict[str, str]:
        """A ``to`` template's names for ``schema.table``, by action (the chain builds
        them into the event of preceding image transforms, one event for all)."""
        template = self.template or ""
        return {action: template.format(schema=schema, table=table, action=action)
                for action in ("write", "update", "delete", "read")}

    @property
    def by_table(self) -> bool:
        """Whether the destination depends on the table and action only (a ``to``
        template), not on the row."""
        return self.template is not None

    def routes(self, schema: str, table: str) -> bool:
        qualified = qualified_name(schema, table)
        return any(fnmatchcase(qualified, pattern) for pattern in self.tables)

    def apply(self, event: RowEvent) -> TransformResult:
        function = self.for_table(event.schema, event.table)
        return event if function is None else function(event)


def _check_template(options: Options, template: str) -> None:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise options.error("to", f"invalid template {template!r}: {exc}") from None
    for _text, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS or spec or conversion:
            raise options.error(
                "to", f"unknown field {{{field}}} in {template!r}; a template can use "
                f"{', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)} (for row values use "
                "expression = \"...\")")


def _expression_name(expression: Expression) -> Callable[[RowEvent], str]:
    execute = expression.execute

    def name(event: RowEvent) -> str:
        found = execute(event)
        if not isinstance(found, str) or not found:
            raise TypeError(f"{expression.text!r} gave {found!r}, not a non-empty string")
        return found
    return name
