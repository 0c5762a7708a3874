"""``print``: one line per event on stdout, as the original meepo's examples show them."""

from __future__ import annotations

import sys
from typing import Self

from ..events import Batch, RowEvent
from ..options import Options
from ..serialization import event_to_json
from ..sink import Sink


class PrintSink(Sink):
    """Writes ``{table}_{action} {pk}`` per event (``test_write 1``), or the whole event as a
    JSON line with ``format = "json"``, or a custom ``template`` with the keys ``name``,
    ``schema``, ``table``, ``action`` and ``pk``. Flushed once per batch."""

    def __init__(self, fmt: str = "line", template: str = "{name} {pk}") -> None:
        self.format = fmt
        self.template = template

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

    def apply(self, batch: Batch) -> None:
        if batch.events:
            out = sys.stdout
            out.write("".join(self.format_event(e) + "\n" for e in batch.events))
            out.flush()
