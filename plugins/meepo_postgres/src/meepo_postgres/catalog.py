"""What the stream needs from the catalog: converters for type OIDs, and key columns.

Built-in types are known by OID (:mod:`meepo_postgres.values`); any other OID is looked up
once in ``pg_type``: an enum is text, a domain converts as its base type, an array as
(nested) lists of its element type, a string-category type (``citext``...) is text.
Anything else arrives as its text, with one warning per type.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from meepo_core import ColumnDefinition, TableDefinition

from .server import ControlConnection
from .values import ARRAYS, SCALARS, ArrayConverter, Converter

log = logging.getLogger("meepo.postgres")


class Catalog:
    """Caches lookups for one stream; ``forget_keys`` after a relation changed."""

    def __init__(self, control: ControlConnection) -> None:
        self.control = control
        self._converters: dict[int, Converter | None] = dict(SCALARS)
        self._keys: dict[int, tuple[str, ...]] = {}

    def converter(self, type_oid: int) -> Converter | None:
        """The converter for values of ``type_oid`` (``None``: the text is the value)."""
        if type_oid in self._converters:
            return self._converters[type_oid]
        element = ARRAYS.get(type_oid)
        if element is not None:
            found: Converter | None = ArrayConverter(self.converter(element))
        else:
            found = self._lookup(type_oid)
        self._converters[type_oid] = found
        return found

    def _lookup(self, type_oid: int) -> Converter | None:
        rows = self.control.query(
            "SELECT typtype, typcategory, typelem, typbasetype, typdelim, "
            "format_type(oid, NULL) FROM pg_type WHERE oid = %s", type_oid,
        )
        if not rows:
            log.warning("type oid %d is not in pg_type (dropped?); its values arrive as text",
                        type_oid)
            return None
        kind, category, element, base, delimiter, name = rows[0]
        if kind == "e" or category == "S":  # enum, or string-like (citext...)
            return None
        if kind == "d":
            return self.converter(int(base))
        if category == "A" and int(element):
            return ArrayConverter(self.converter(int(element)), str(delimiter))
        log.warning(
            "type %s (oid %d) has no converter in meepo-postgres: its values arrive as the "
            "server's text", name, type_oid,
        )
        return None

    def key_columns(self, relation_oid: int, replica_identity: str) -> tuple[str, ...]:
        """The columns that key events of the table, in key order: its replica identity
        index under ``REPLICA IDENTITY USING INDEX``, else its primary key; empty when it
        has neither (then events are keyed by the whole row)."""
        found = self._keys.get(relation_oid)
        if found is None:
            which = "indisreplident" if replica_identity == "i" else "indisprimary"
            rows = self.control.query(
                "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY "
                "AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid AND "
                "a.attnum = k.attnum ORDER BY k.ord) "
                f"FROM pg_index i WHERE i.indrelid = %s AND i.{which}", relation_oid,
            )
            found = self._keys[relation_oid] = tuple(rows[0][0]) if rows else ()
        return found

    def forget_keys(self, relation_oid: int) -> None:
        self._keys.pop(relation_oid, None)


#: pg_class.relreplident -> the name TableDefinition uses.
REPLICA_IDENTITIES = {"d": "default", "n": "nothing", "f": "full", "i": "index"}
_CHARACTER_TYPES = {"character varying", "character"}
_BIT_TYPES = {"bit", "bit varying"}
_TIME_TYPES = {"time without time zone", "time with time zone", "timestamp without time zone",
               "timestamp with time zone"}

_DEFINITION_SQL = (
    "SELECT a.attname::text, a.attnotnull, a.atttypmod, "
    "format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, NULL), "
    "CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e "
    "WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END, "
    "CASE WHEN t.typcategory = 'A' THEN format_type(t.typelem, NULL) END, c.relreplident "
    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)


def column_definition(name: str, type_name: str, nullable: bool, typmod: int,
                      enum_values: tuple[str, ...] = (), element: str | None = None,
                      ) -> ColumnDefinition:
    """A column's definition from its catalog entry: the type modifier gives a decimal's
    precision and scale, a string's or bit string's length, a time type's digits."""
    length = precision = scale = None
    if typmod >= 0:
        if type_name == "numeric" and typmod >= 4:
            precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0x7FF
        elif type_name in _CHARACTER_TYPES and typmod >= 4:
            length = typmod - 4
        elif type_name in _BIT_TYPES:
            length = typmod
        elif type_name in _TIME_TYPES:
            precision = typmod
        elif type_name == "interval" and typmod & 0xFFFF != 0xFFFF:
            precision = typmod & 0xFFFF
    return ColumnDefinition(name, type_name, nullable, length=length, precision=precision,
                            scale=scale, enum_values=enum_values, element=element)


def table_definition(control: ControlConnection, relation_oid: int, database: str,
                     schema: str, table: str, key: tuple[str, ...],
                     shown: Collection[str] | None = None) -> TableDefinition:
    """The definition of relation ``relation_oid`` as the catalog holds it now; ``shown``
    limits it to the columns events show (None: all)."""
    rows = control.query(_DEFINITION_SQL, relation_oid)
    columns = tuple(
        column_definition(str(name), str(kind), not notnull, int(typmod),
                          tuple(labels or ()), element)
        for name, notnull, typmod, kind, labels, element, _ in rows
        if shown is None or name in shown)
    identity = REPLICA_IDENTITIES.get(str(rows[0][6]), "") if rows else ""
    return TableDefinition(columns, key, dialect="postgresql", database=database,
                           schema=schema, table=table, replica_identity=identity)
