"""What ``meepo check`` says about the source's tables when the sink writes Debezium's
format: a column type it does not encode (a problem: every row of the table would be
dead-lettered) and one it encodes but cannot always write as Debezium does (a warning:
the README's type table says why), one line each naming table, column and type.

Only PostgreSQL definitions are looked at: the events of other sources carry none yet, so
they get the schemaless envelope whatever their columns (see :mod:`meepo_kafka.debezium`).
"""

from __future__ import annotations

from collections.abc import Sequence

from meepo_core import TableDefinition

from .debezium_settings import DebeziumSettings
from .debezium_types import Modes, UnsupportedType, field_codec

#: Types Debezium writes in a way meepo reproduces only sometimes, with why.
INEXACT = {
    "json": "Debezium writes the text as stored; meepo writes the parsed document again "
            "(spaced ', ' and ': ', duplicate keys and \\u escapes not kept), equal only "
            "when the stored text is already written so; jsonb has no such difference",
}


def table_findings(definitions: Sequence[TableDefinition],
                   settings: DebeziumSettings) -> tuple[list[str], list[str]]:
    """(problems, warnings) of ``definitions`` for the Debezium format with ``settings``."""
    modes = Modes(settings.decimal_handling_mode, settings.time_precision_mode,
                  settings.binary_handling_mode)
    problems: list[str] = []
    warnings: list[str] = []
    for definition in definitions:
        if definition.dialect != "postgresql":
            continue
        table = f"{definition.schema}.{definition.table}"
        for column in definition.columns:
            try:
                field_codec(column, modes=modes)
            except UnsupportedType as exc:
                problems.append(
                    f"table {table}: {exc}, so every row of it would be dead-lettered; "
                    f"exclude the column (the source's columns setting) or use format = "
                    f'"meepo"')
                continue
            why = INEXACT.get(column.base_type.removesuffix("[]"))
            if why is not None:
                warnings.append(f"table {table}: column {column.name!r} ({column.type}): "
                                f"{why}")
    return problems, warnings
