"""Debezium's transaction metadata (``provide.transaction.metadata``): a BEGIN record on
``{prefix}.transaction`` before the first change of each transaction, an END record with
the counts after its last, and the ``transaction`` block in every change event.

Transactions are recognised by the events' ``txid``: a new txid begins one, and the one
open ends when another begins or when a batch that ends on a transaction boundary is done
(a transaction larger than a batch spans several batches, so the tracker keeps its state
between them). Debezium's transaction id is ``txId:lsn``; meepo uses the LSN of the
change (of the last change for END), as Debezium does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from meepo_core import RowEvent

from .debezium_codec import lsn_number

KEY_SCHEMA = orjson.Fragment(orjson.dumps({
    "type": "struct", "fields": [{"type": "string", "optional": False, "field": "id"}],
    "optional": False, "name": "io.debezium.connector.common.TransactionMetadataKey",
    "version": 1}))
VALUE_SCHEMA = orjson.Fragment(orjson.dumps({
    "type": "struct", "fields": [
        {"type": "string", "optional": False, "field": "status"},
        {"type": "string", "optional": False, "field": "id"},
        {"type": "int64", "optional": True, "field": "event_count"},
        {"type": "array", "items": {
            "type": "struct", "fields": [
                {"type": "string", "optional": False, "field": "data_collection"},
                {"type": "int64", "optional": False, "field": "event_count"}],
            "optional": True, "name": "event.collection", "version": 1},
         "optional": True, "field": "data_collections"},
        {"type": "int64", "optional": False, "field": "ts_ms"}],
    "optional": False, "name": "io.debezium.connector.common.TransactionMetadataValue",
    "version": 1}))

#: A transaction record: key and value, ready to produce.
Record = tuple[bytes, bytes]


@dataclass
class _Open:
    txid: str
    committed_ms: int
    last_lsn: int | None = None
    total: int = 0
    per_table: dict[str, int] = field(default_factory=dict)


class TransactionTracker:
    """Follows the transactions of the events a sink writes, in order."""

    def __init__(self, schemas: bool) -> None:
        self.schemas = schemas
        self._open: _Open | None = None
        self._kept: _Open | None = None  # the state after the last batch that was sent

    def start_batch(self) -> None:
        """Back to the state after the last batch sent: a batch sent again (after a
        failure) counts its events once."""
        kept = self._kept
        self._open = None if kept is None else _Open(
            kept.txid, kept.committed_ms, kept.last_lsn, kept.total, dict(kept.per_table))

    def batch_sent(self) -> None:
        """The batch was acknowledged: its counts stand."""
        current = self._open
        self._kept = None if current is None else _Open(
            current.txid, current.committed_ms, current.last_lsn, current.total,
            dict(current.per_table))

    def begin_if_new(self, event: RowEvent) -> list[Record]:
        """The END of the open transaction and the BEGIN of ``event``'s, when ``event``
        starts another one; nothing otherwise (or for an event without a txid)."""
        txid = event.txid
        if txid is None or event.action == "read":
            return []
        current = self._open
        if current is not None and current.txid == txid:
            return []
        records = self.end()
        stamp = event.committed_at.timestamp()
        self._open = _Open(txid, int(stamp * 1000), lsn_number(event.position))
        records.append(self._record({
            "status": "BEGIN", "id": self._id(self._open), "event_count": None,
            "data_collections": None, "ts_ms": self._open.committed_ms}))
        return records

    def block(self, event: RowEvent) -> dict[str, Any] | None:
        """The ``transaction`` block of one change message (counted as written)."""
        current = self._open
        if current is None or event.txid != current.txid:
            return None
        table = f"{event.schema}.{event.table}"
        current.total += 1
        current.per_table[table] = current.per_table.get(table, 0) + 1
        lsn = lsn_number(event.position)
        if lsn is not None:
            current.last_lsn = lsn
        return {"id": self._id(current), "total_order": current.total,
                "data_collection_order": current.per_table[table]}

    def end(self) -> list[Record]:
        """The END record of the open transaction, if one is open."""
        current, self._open = self._open, None
        if current is None:
            return []
        return [self._record({
            "status": "END", "id": self._id(current), "event_count": current.total,
            "data_collections": [{"data_collection": table, "event_count": count}
                                 for table, count in current.per_table.items()],
            "ts_ms": current.committed_ms})]

    @staticmethod
    def _id(current: _Open) -> str:
        """PostgreSQL: ``txId:lsn``; MySQL/MariaDB (no LSN): the transaction's GTID, as
        Debezium's MySQL connector names a transaction when GTIDs are on."""
        if current.last_lsn is None:
            return current.txid
        return f"{current.txid}:{current.last_lsn}"

    def _record(self, value: dict[str, Any]) -> Record:
        key = {"id": value["id"]}
        if self.schemas:
            return (orjson.dumps({"schema": KEY_SCHEMA, "payload": key}),
                    orjson.dumps({"schema": VALUE_SCHEMA, "payload": value}))
        return orjson.dumps(key), orjson.dumps(value)
