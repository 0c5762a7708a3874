"""``meepo check``'s look at a pipeline's transforms: columns named in ``mask``, ``hash``,
``drop_columns``, ``keep_columns`` or an expression that no followed table has (a typo
hides nothing, or filters everything)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from .chain import PipelineTransforms


def unknown_columns(
    transforms: PipelineTransforms, tables: Mapping[str, Sequence[str]]
) -> list[str]:
    """One warning per ``schema.table.column`` pattern of a transform that matches no
    column of ``tables`` (``schema.table`` -> the columns the source sends). Patterns are
    matched against the source's names: a column renamed by an earlier ``rename`` is not
    known here."""
    warnings = []
    for chain in transforms.chains():
        for transform in chain.transforms:
            for key, table_pattern, column_pattern in transform.columns():
                matching = [name for name in tables if fnmatchcase(name, table_pattern)]
                if any(fnmatchcase(column, column_pattern)
                       for name in matching for column in tables[name]):
                    continue
                where = (f"tables {', '.join(sorted(matching))} have no column "
                         f"{column_pattern!r}" if matching else "no followed table matches "
                         f"{table_pattern!r}")
                warnings.append(
                    f"{transform.key_path}.{key}: "
                    f"'{table_pattern}.{column_pattern}' names no column of the pipeline's "
                    f"tables ({where}); fix the name, or the transform changes nothing there")
    return warnings
