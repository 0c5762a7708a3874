"""Consecutive built-in transforms compiled, per table, into one generated Python function
that runs over a batch's events of that table.

A run of steps is compiled when each is a ``filter``, an image transform (``mask``,
``hash``, ``drop_columns``, ``keep_columns`` or any :class:`ImageTransform`) or a ``route``
by template. For one table the generated function has every table-dependent decision
folded in: which columns each transform edits (as literal names), the hash and mask
functions of those columns, the route's names by action, a filter translated to Python
(:mod:`meepo_core.transforms.cel_python`) with CEL as its fallback. Per event there is then
no call per transform, no intermediate event and one copy of each image; the loop runs
inside the function, over the events of one table in a row (one call per run of a table,
not per event).

With ``in_place`` (see :meth:`CompiledSteps.run`) the function sets the changed fields of
the incoming event itself instead of building a new one: only for events that nothing else
holds (a source's fresh events, before any other step saw them), and only after every step
succeeded on the event, so an event that raises is still the source's when it is run again
step by step.

The generated source holds no user text as code: column and table names, string literals
of a filter and mask values appear as ``repr()`` literals, every other name is generated.

Behaviour is that of the steps one after the other: an event that raises anywhere is run
again through the steps one by one, which reports it under the transform that raises (or
stops, with ``on_error = "stop"``); events a filter drops are counted under that filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from itertools import islice
from typing import Any

from ..events import UNCHANGED, RowEvent, UnfrozenRowEvent
from .base import ImageTransform, TableRoute, Transform
from .cel_python import translate
from .columns import ColumnValueTransform
from .drop_columns_transform import DropColumnsTransform
from .filter_transform import FilterTransform

#: ``run(events, start, out, schema, table, drops, slow) -> next index``: appends to
#: ``out`` the output of the events from ``start`` on while they are of ``schema.table``,
#: adds the filters' drops to ``drops``, sends an event that
#: raised to ``slow``.
TableRun = Callable[..., int]

_MISSING: Any = object()
#: Stands for the image's variable in an image transform's lines (a column name's repr
#: cannot hold it).
_IMAGE = "\0"
#: Every field of an event, all set when one is built (a field added to RowEvent is copied
#: from the event unless the chain changes it).
_FIELDS = tuple(f.name for f in fields(RowEvent))


def compilable(transform: Transform) -> bool:
    """Whether ``transform`` joins a compiled run: a built-in ``filter``, an image
    transform or a ``route`` by template, whose per-table function is the one its class
    defines (not overridden)."""
    kind = type(transform)
    if isinstance(transform, FilterTransform):
        return kind.for_table is FilterTransform.for_table
    if isinstance(transform, ImageTransform):
        return kind.for_table is ImageTransform.for_table
    return isinstance(transform, TableRoute) and transform.by_table


@dataclass
class _Source:
    """The generated function's text and the constants it names."""

    lines: list[str] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    #: ``name = initial`` lines run before the loop
    locals: list[str] = field(default_factory=list)

    def local(self, initial: str) -> str:
        name = f"local{len(self.locals)}"
        self.locals.append(f"{name} = {initial}")
        return name

    def constant(self, value: Any, prefix: str = "K") -> str:
        name = f"{prefix}{len(self.constants)}"
        self.constants[name] = value
        return name

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def compile_run(transforms: Sequence[Transform], schema: str, table: str,
                in_place: bool = False) -> TableRun:
    """The generated function (see :data:`TableRun`) of ``transforms`` for the events of
    ``schema.table``; ``in_place``: it changes the events it keeps instead of copying them
    (the caller owns them)."""
    src = _Source()
    src.constants.update({"islice": islice, "UNCHANGED": UNCHANGED, "MISSING": _MISSING,
                          "UNFROZEN": UnfrozenRowEvent, "RowEvent": RowEvent})
    for name in ("before", "after", "destination"):  # to change an event in place
        src.constants[f"SET_{name}"] = getattr(RowEvent, name).__set__
    body: list[str] = []
    filters: list[int] = []
    state = {"copied": False, "routed": False}

    def current_event() -> str:
        """An expression for the event as the steps so far made it."""
        if not state["copied"] and not state["routed"]:
            return "event"
        destination = "destination" if state["routed"] else "event.destination"
        return f"BUILD(event, before, after, {destination})"

    pending: list[str] = []  # the edits of consecutive image transforms

    def flush_edits() -> None:
        """One block per image for the pending edits (the first block copies it)."""
        if not pending:
            return
        for image in ("before", "after"):
            body.append(f"if {image}:")
            if not state["copied"]:
                body.append(f"    {image} = dict({image})")
            body.extend("    " + line.replace(_IMAGE, image) for line in pending)
        state["copied"] = True
        pending.clear()

    for index, transform in enumerate(transforms):
        if isinstance(transform, FilterTransform):
            flush_edits()
            lines = _filter_lines(src, transform, index, schema, table, current_event())
            if lines:
                filters.append(index)
                body.extend(lines)
        elif isinstance(transform, ImageTransform):
            pending.extend(_image_lines(src, transform, schema, table) or ())
        else:
            route: Any = transform
            if route.routes(schema, table):
                names = src.constant(dict(route.table_destinations(schema, table)), "DEST")
                body.append(f"destination = {names}[action]")
                state["routed"] = True
    flush_edits()
    if in_place:
        # three slot writes instead of a new event's fourteen (a third of a chain's cost)
        if state["copied"]:
            body += ["SET_before(event, before)", "SET_after(event, after)"]
        if state["routed"]:
            body.append("SET_destination(event, destination)")
        body.append("append(event)")
    elif state["copied"] or state["routed"]:
        body.extend(_build_lines("built", "before", "after",
                                 "destination" if state["routed"] else "event.destination"))
        body.append("append(built)")
    else:
        body.append("append(event)")
    src.constants["BUILD"] = _rebuild

    src.add(0, "def run(events, index, out, S, T, drops, slow):")
    src.add(1, "append = out.append")
    for index in filters:
        src.add(1, f"dropped{index} = 0")
    for line in src.locals:
        src.add(1, line)
    src.add(1, "for event in islice(events, index, None):")
    # names are mostly the very objects of the previous event: identity first
    src.add(2, "if (event.table is not T and event.table != T"
               " or event.schema is not S and event.schema != S):")
    src.add(3, "break")
    src.add(2, "index += 1")
    src.add(2, "try:")
    src.add(3, "before = event.before")
    src.add(3, "after = event.after")
    if any(re.search(r"\baction\b", line) for line in body):
        src.add(3, "action = event.action")
    for line in body:
        src.add(3, line)
    src.add(2, "except Exception:")
    src.add(3, "slow(event)")
    for index in filters:
        src.add(1, f"drops[{index}] += dropped{index}")
    src.add(1, "return index")
    text = "\n".join(src.lines) + "\n"
    namespace = dict(src.constants)
    exec(compile(text, f"<meepo transforms for {schema}.{table}>", "exec"), namespace)
    run: TableRun = namespace["run"]
    run.source = text  # type: ignore[attr-defined]  # for tests and for reading
    return run


def _build_lines(target: str, before: str, after: str, destination: str) -> list[str]:
    """Statements setting ``target`` to a new event with those images and destination
    (the rest from ``event``): :meth:`RowEvent.trusted` inlined."""
    values = {"schema": "S", "table": "T", "action": "action", "before": before,
              "after": after, "destination": destination}
    lines = [f"{target} = UNFROZEN()"]
    lines += [f"{target}.{name} = {values.get(name, f'event.{name}')}" for name in _FIELDS]
    lines.append(f"{target}.__class__ = RowEvent")
    return lines


def _rebuild(event: RowEvent, before: Any, after: Any, destination: str | None) -> RowEvent:
    """The event as the steps so far made it (for a filter's CEL fallback after edits)."""
    return RowEvent.trusted(
        event.schema, event.table, event.action, event.pk, before, after, event.position,
        event.committed_at, event.txid, event.sequence, event.pk_columns, destination,
        event.definition)


def _filter_lines(src: _Source, transform: FilterTransform, index: int, schema: str,
                  table: str, event: str) -> list[str]:
    """A filter's statements: ``continue`` (counted) for an event it drops."""
    function = transform.for_table(schema, table)
    if function is None:
        return []
    drop = [f"    dropped{index} += 1", "    continue"]
    fallback = src.constant(function, "FILTER")
    condition = translate(transform.where.text, schema, table)
    if condition is None:
        return [f"if {fallback}({event}) is None:", *drop]
    lines = []
    if any(image == "row" for image, _ in condition.columns):
        lines.append("row = after if after is not None else before")
    for (image, column), (name, _kind) in condition.columns.items():
        value = f"{image}.get({column!r}, MISSING) if {image} else MISSING"
        lines.append(f"{name} = {value}")
    lines += [f"if {condition.guard()}:",
              f"    if not {condition.source}:",
              "    " + drop[0], "    " + drop[1],
              f"elif {fallback}({event}) is None:", *drop]
    return lines


def _image_lines(src: _Source, transform: ImageTransform, schema: str,
                 table: str) -> list[str] | None:
    """The statements editing the copy of one image, :data:`_IMAGE` standing for its name;
    None when the transform leaves the table's events unchanged."""
    editor = transform.row_editor(schema, table)
    if editor is None:
        return None
    kind = type(transform)
    if isinstance(transform, ColumnValueTransform) \
            and kind.row_editor is ColumnValueTransform.row_editor:
        columns = transform.column_list.for_table(schema, table)
        if columns is not None and not columns.patterns:
            replacing = transform.value_lines(src) or [
                f"value = {src.constant(transform.replace, 'REPLACE')}(value)"]
            lines = []
            for name in sorted(columns.names):
                lines += [f"value = {_IMAGE}.get({name!r})",
                          "if value is not None and value is not UNCHANGED:",
                          *("    " + line for line in replacing),
                          f"    {_IMAGE}[{name!r}] = value"]
            return lines
    if isinstance(transform, DropColumnsTransform) and not transform.keep \
            and kind.row_editor is DropColumnsTransform.row_editor:
        columns = transform.column_list.for_table(schema, table)
        if columns is not None and not columns.patterns:
            return [f"{_IMAGE}.pop({name!r}, None)" for name in sorted(columns.names)]
    edit = src.constant(editor, "EDIT")
    # an image an edit emptied is left as it is by the next ones, as in edit_images
    return [f"if {_IMAGE}:", f"    {edit}({_IMAGE})"]
