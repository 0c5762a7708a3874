"""What ``meepo check`` says about the source's columns in Debezium's format: the types
meepo cannot encode (problems) and the MySQL columns whose messages differ from Debezium's
(notes; the README's type table says why)."""

from __future__ import annotations

from meepo_core import TableDefinition

from .debezium_mysql import base_kind, default_left_out, mysql_field_codec
from .debezium_types import DEFAULT_MODES, Modes, UnsupportedType, field_codec


def definition_notes(definitions: list[TableDefinition], modes: Modes = DEFAULT_MODES,
                     ) -> tuple[list[str], list[str]]:
    """``meepo check``'s (problems, notes) about the columns of ``definitions`` in
    Debezium's format: types meepo cannot encode, and the MySQL columns whose messages
    differ from Debezium's (the README's type table says why)."""
    problems: list[str] = []
    notes: list[str] = []
    for definition in definitions:
        mysql = definition.dialect in ("mysql", "mariadb")
        where = f"{definition.schema}.{definition.table}"
        if mysql and not definition.key_columns:
            notes.append(f"{where} has no primary key: Debezium delivers its rows with a null "
                         "key; the mysql source skips them unless its no_pk = \"row\"")
        for column in definition.columns:
            name = f"{where}.{column.name}"
            try:
                if mysql:
                    mysql_field_codec(column, modes=modes,
                                      mariadb=definition.dialect == "mariadb")
                else:
                    field_codec(column, modes=modes)
            except UnsupportedType:
                problems.append(f"{name} has type {column.type!r}, which the Debezium format "
                                "cannot encode; hide the column (the source's columns "
                                "setting) or leave the table out")
                continue
            if not mysql:
                continue
            kind = base_kind(column)
            if kind == "json" and definition.dialect == "mariadb":
                notes.append(f"{name} (MariaDB JSON): Debezium writes the stored text, "
                             "meepo the same JSON value re-serialised (spacing and number "
                             "spelling may differ)")
            elif kind in ("inet4", "inet6", "uuid"):
                notes.append(f"{name} ({kind}): written as text; not compared with "
                             "Debezium's MySQL connector")
            if default_left_out(column, modes):
                notes.append(f"{name}: its default {column.default} is left out of the "
                             "schema's \"default\" (Debezium writes the evaluated value)")
    return problems, notes
