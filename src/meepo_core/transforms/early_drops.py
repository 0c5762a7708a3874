"""Columns that a pipeline's transforms drop before any step reads them, so that a source
can leave them out of its events and never decode them (projection pushdown).

A ``drop_columns`` (or ``keep_columns``) step of the pipeline's chain removes columns from
every event of every sink. When no step before it can see those columns' values, the
output is the same whether the source sends them or not, and a source that decodes rows
itself (the ``mysql`` source's binlog and snapshot decoders) saves decoding them: what the
source is told (:meth:`meepo_core.source.Source.drop_columns_early`) is only a permission.
The steps themselves still run, so a source that ignores it, or keeps some of the columns
(key columns: the event's ``pk`` is built from them), gives the same events.

Which steps before a drop let it through, because they cannot depend on a column that
the drop removes:

* ``hash``, ``mask``, ``drop_columns``, ``keep_columns`` (built-in classes, not
  subclasses): each changes the columns it names and reads no other; a change to a column
  that a later step drops is lost either way;
* a ``route`` by template (it reads the table and action only);
* a ``filter`` that reads columns only as ``image.column``: those columns are kept from
  every later drop; a filter that reads an image whole or ``changed`` ends the search.

Any other step (``rename``, ``python``, a route by expression, a third party's transform)
ends the search: drops after it are not told to the source. Sinks' own chains never are:
their drops concern one sink only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase

from .base import Transform
from .drop_columns_transform import DropColumnsTransform
from .filter_transform import FilterTransform
from .hash_transform import HashTransform
from .keep_columns_transform import KeepColumnsTransform
from .mask_transform import MaskTransform
from .route_transform import RouteTransform

#: ``dropped(schema, table, columns)``: which of ``columns`` (a table's column names) a
#: pipeline's transforms drop from every event of ``schema.table`` before anything reads
#: them.
DroppedColumns = Callable[[str, str, Sequence[str]], frozenset[str]]


def columns_dropped_early(transforms: Sequence[Transform]) -> DroppedColumns | None:
    """The columns the pipeline chain ``transforms`` drops before any step reads them, or
    None when it drops none that way."""
    # each drop with the columns read by the filters before it (which it must keep)
    drops: list[tuple[DropColumnsTransform, frozenset[str]]] = []
    read: set[str] = set()
    for transform in transforms:
        kind = type(transform)
        if kind is DropColumnsTransform or kind is KeepColumnsTransform:
            assert isinstance(transform, DropColumnsTransform)
            drops.append((transform, frozenset(read)))
        elif kind is HashTransform or kind is MaskTransform or _routes_by_table(transform):
            continue
        elif kind is FilterTransform and isinstance(transform, FilterTransform):
            columns = transform.where.columns_read()
            if columns is None:
                break
            read |= columns
        else:
            break
    if not drops:
        return None

    def dropped(schema: str, table: str, columns: Sequence[str]) -> frozenset[str]:
        found: set[str] = set()
        for drop, kept in drops:
            named = drop.column_list.for_table(schema, table)
            if named is None:
                continue  # the step leaves the table alone (keep_columns too)
            for column in columns:
                listed = column in named.names or any(
                    fnmatchcase(column, pattern) for pattern in named.patterns)
                if listed != drop.keep and column not in kept:
                    found.add(column)
        return frozenset(found)
    return dropped


def _routes_by_table(transform: Transform) -> bool:
    return type(transform) is RouteTransform and isinstance(transform, RouteTransform) \
        and transform.by_table
