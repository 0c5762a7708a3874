"""``print``: one line per event on stdout, as the original meepo's examples show them."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Self

from ..events import Batch, RowEvent
from ..options import Options, OptionSpec
from ..schema_changes import SchemaChange, schema_change_to_dict
from ..serialization import event_to_json
from ..sink import Sink

if TYPE_CHECKING:
    from ..context import PipelineContext


FORMAT = OptionSpec(
    "format", "string", "line",
    '`"line"`: one line per event from `template`; `"json"`: the whole event as a JSON line.',
    choices=("line", "json"))
TEMPLATE = OptionSpec(
    "template", "string", "{name} {pk}",
    "The line of each event (with `format = \"line\"`); placeholders `{name}` "
    "(`table_action`), `{schema}`, `{table}`, `{action}` and `{pk}`.")


class PrintSink(Sink):
    """Writes ``{table}_{action} {pk}`` per event (``test_write 1``), or the whole event as a
    JSON line with ``format = "json"``, or a custom ``template`` with the keys ``name``,
    ``schema``, ``table``, ``action`` and ``pk``. Flushed once per batch. With ``json``, an
    event with a value JSON cannot carry goes to the dead-letter store.

    Schema changes are printed in their place: ``{table}_schema {kind} col type, ...`` (the
    columns after the change), or the change as JSON with ``format = "json"``; a
    ``describe`` (a source restating a definition it met again, at every start of a
    PostgreSQL session) changes nothing and is not printed."""

    follows_schema_changes = True
    OPTIONS = (FORMAT, TEMPLATE)

    def __init__(self, fmt: str = "line", template: str = "{name} {pk}") -> None:
        self.format = fmt
        self.template = template
        self._context: PipelineContext | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        fmt = options.choice(FORMAT)
        template = options.string(TEMPLATE)
        try:
            template.format(name="", schema="", table="", action="", pk="")
        except (KeyError, IndexError, ValueError) as exc:
            raise options.error(
                "template",
                f"bad placeholder {exc}; use {{name}} {{schema}} {{table}} {{action}} {{pk}}",
            ) from exc
        options.done()
        return cls(fmt, template)

    def format_event(self, event: RowEvent) -> str:
        if self.format == "json":
            return event_to_json(event)
        return self.template.format(
            name=event.name,
            schema=event.schema,
            table=event.table,
            action=event.action,
            pk=event.pk,
        )

    def open(self, context: PipelineContext) -> None:
        self._context = context

    def format_change(self, change: SchemaChange) -> str:
        if self.format == "json":
            return json.dumps(schema_change_to_dict(change), ensure_ascii=False,
                              separators=(",", ":"))
        columns = ", ".join(f"{c.name} {c.type}" for c in change.after.columns) \
            if change.after is not None else "-"
        return f"{change.name} {change.kind} {columns}"

    def apply(self, batch: Batch) -> None:
        if batch.schema_changes:
            for part in batch.in_order():
                if isinstance(part, SchemaChange):
                    if part.kind != "describe":
                        self._write([self.format_change(part) + "\n"])
                else:
                    self._print(part)
        else:
            self._print(batch.events)

    def _write(self, lines: list[str]) -> None:
        out = sys.stdout
        out.write("".join(lines))
        out.flush()

    def _print(self, events: tuple[RowEvent, ...]) -> None:
        lines = []
        for event in events:
            try:
                lines.append(self.format_event(event) + "\n")
            except (TypeError, ValueError, RecursionError) as exc:
                if self._context is None:
                    raise
                self._context.dead_letter(event, "print", f"cannot encode: {exc}")
        if lines:
            self._write(lines)
