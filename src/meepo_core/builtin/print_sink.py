"""``print``: one line per event on stdout, as the original meepo's examples show them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Self

from ..events import Batch, RowEvent
from ..options import Options
from ..serialization import event_to_json
from ..sink import Sink

if TYPE_CHECKING:
    from ..context import PipelineContext


class PrintSink(Sink):
    """Writes ``{table}_{action} {pk}`` per event (``test_write 1``), or the whole event as a
    JSON line with ``format = "json"``, or a custom ``template`` with the keys ``name``,
    ``schema``, ``table``, ``action`` and ``pk``. Flushed once per batch. With ``json``, an
    event with a value JSON cannot carry goes to the dead-letter store."""

    def __init__(self, fmt: str = "line", template: str = "{name} {pk}") -> None:
        self.format = fmt
        self.template = template
        self._context: PipelineContext | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        fmt = options.choice("format", ("line", "json"), "line")
        template = options.string("template", "{name} {pk}")
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

    def apply(self, batch: Batch) -> None:
        lines = []
        for event in batch.events:
            try:
                lines.append(self.format_event(event) + "\n")
            except (TypeError, ValueError, RecursionError) as exc:
                if self._context is None:
                    raise
                self._context.dead_letter(event, "print", f"cannot encode: {exc}")
        if lines:
            out = sys.stdout
            out.write("".join(lines))
            out.flush()
