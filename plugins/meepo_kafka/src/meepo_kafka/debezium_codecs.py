"""The Debezium codec of each table definition: PostgreSQL's (:mod:`.debezium_codec`) or
MySQL's (:mod:`.debezium_mysql_codec`), by the definition's dialect."""

from __future__ import annotations

from meepo_core import TableDefinition

from .debezium_codec import TableCodec
from .debezium_mysql_codec import MySQLTableCodec
from .debezium_types import DEFAULT_MODES, Modes


class CodecCache:
    """The codec of each table definition, found by the definition's identity."""

    def __init__(self, server_name: str, version: str, schemas: bool,
                 modes: Modes = DEFAULT_MODES) -> None:
        self.server_name = server_name
        self.version = version
        self.schemas = schemas
        self.modes = modes
        #: (definition, codec) by the definition's id; the format's hot paths read it
        #: directly (a hit is the definition itself, as in :meth:`codec`)
        self.by_id: dict[int, tuple[TableDefinition, TableCodec]] = {}
        self._codecs = self.by_id

    def codec(self, definition: TableDefinition) -> TableCodec:
        found = self._codecs.get(id(definition))
        if found is not None and found[0] is definition:
            return found[1]
        kind = MySQLTableCodec if definition.dialect in ("mysql", "mariadb") else TableCodec
        codec = kind(definition, self.server_name, self.version, self.schemas, self.modes)
        if len(self._codecs) > 10_000:  # definitions replaced by DDL, many times over
            self._codecs.clear()
        self._codecs[id(definition)] = (definition, codec)
        return codec
