"""What ``meepo check`` says about the source's tables when the sink writes Debezium's
format: a column type it does not encode (a problem: every row of the table would be
dead-lettered) and one it encodes but cannot always write as Debezium does (a warning:
the README's type tables say why), one line each naming table, column and type."""

from __future__ import annotations

from collections.abc import Sequence

from meepo_core import ColumnDefinition, TableDefinition

from .debezium_mysql import base_kind, default_left_out, mysql_field_codec
from .debezium_settings import DebeziumSettings
from .debezium_types import Modes, UnsupportedType, field_codec

#: PostgreSQL types Debezium writes in a way meepo reproduces only sometimes, with why.
INEXACT = {
    "json": "Debezium writes the text as stored; meepo writes the parsed document again "
            "(spaced ', ' and ': ', duplicate keys and \\u escapes not kept), equal only "
            "when the stored text is already written so; jsonb has no such difference",
}


def table_findings(definitions: Sequence[TableDefinition],
                   settings: DebeziumSettings) -> tuple[list[str], list[str]]:
    """(problems, warnings) of ``definitions`` for the Debezium format with ``settings``."""
    modes = Modes(settings.decimal_handling_mode, settings.time_precision_mode,
                  settings.binary_handling_mode, settings.bigint_unsigned_handling_mode)
    problems: list[str] = []
    warnings: list[str] = []
    for definition in definitions:
        mysql = definition.dialect in ("mysql", "mariadb")
        table = f"{definition.schema}.{definition.table}"
        if mysql and not definition.key_columns:
            warnings.append(f"table {table} has no primary key: Debezium delivers its rows "
                            'with a null key; the mysql source skips them unless its no_pk '
                            '= "row"')
        for column in definition.columns:
            try:
                if mysql:
                    mysql_field_codec(column, modes=modes,
                                      mariadb=definition.dialect == "mariadb")
                else:
                    field_codec(column, modes=modes)
            except UnsupportedType as exc:
                problems.append(
                    f"table {table}: {exc}, so every row of it would be dead-lettered; "
                    f"exclude the column (the source's columns setting) or use format = "
                    f'"meepo"')
                continue
            why = (_mysql_difference(column, definition.dialect, modes) if mysql
                   else INEXACT.get(column.base_type.removesuffix("[]")))
            if why is not None:
                warnings.append(f"table {table}: column {column.name!r} ({column.type}): "
                                f"{why}")
    return problems, warnings


def _mysql_difference(column: ColumnDefinition, dialect: str, modes: Modes) -> str | None:
    """Why a MySQL/MariaDB column's messages may differ from Debezium's, or None."""
    kind = base_kind(column)
    if kind == "json" and dialect == "mariadb":
        return ("MariaDB JSON: Debezium writes the stored text, meepo the same JSON value "
                "re-serialised (spacing may differ)")
    if kind in ("inet4", "inet6", "uuid"):
        return "written as text; not compared with Debezium's MySQL connector"
    if default_left_out(column, modes):
        return (f"its default {column.default} is left out of the schema's \"default\" "
                "(Debezium writes the evaluated value)")
    return None
