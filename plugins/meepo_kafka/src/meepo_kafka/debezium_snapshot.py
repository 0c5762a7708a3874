"""Debezium's ``source.snapshot`` of a row event, from the place the core gives a snapshot
row in its snapshot (:class:`meepo_core.SnapshotPlace`).

Debezium marks the rows of an initial (or blocking) snapshot ``first`` (the first row of
its first table: none when that table is empty), ``first_in_data_collection`` (the first
row of each other table), ``true``, ``last_in_data_collection`` (the last row of each
table) and ``last`` (the last row it sends, whichever table holds it); a row that is
both the first and the last of something takes the stronger mark, in this order:
``last``, ``first``, ``last_in_data_collection``, ``first_in_data_collection``
(checked against Debezium itself: the golden file ``postgres_snapshot.jsonl``). The
rows of its incremental (signalled, chunked, interleaved with the stream) snapshots
are all ``incremental``; changes are ``false``.

meepo's initial snapshot (``snapshot = "initial"``) gets the initial snapshot's marks; a
snapshot requested later (``meepo snapshot``) is, like Debezium's incremental snapshot, a
DBLog copy running alongside the stream, and gets ``incremental``. Reads a source made
without the core's snapshots (no place) are ``true``.
"""

from __future__ import annotations

from meepo_core import RowEvent, SnapshotPlace


def _marker(place: SnapshotPlace) -> str:
    if not place & SnapshotPlace.INITIAL:
        return "incremental"
    if place & SnapshotPlace.LAST:
        return "last"
    if place & SnapshotPlace.FIRST:
        return "first"
    if place & SnapshotPlace.LAST_IN_TABLE:
        return "last_in_data_collection"
    if place & SnapshotPlace.FIRST_IN_TABLE:
        return "first_in_data_collection"
    return "true"


#: Every combination of the flags, computed once: the per-event path is one dict lookup.
_MARKERS = {SnapshotPlace(flags): _marker(SnapshotPlace(flags)) for flags in range(32)}


def snapshot_marker(event: RowEvent) -> str:
    """``source.snapshot`` of ``event``: ``false`` for a change, else the snapshot mark."""
    if event.action != "read":
        return "false"
    place = event.snapshot
    return "true" if place is None else _MARKERS[place]


#: The flags Debezium's marks stand for when a message is read back (``incremental``: a
#: later request, where Debezium does not say which row is first or last).
PLACES: dict[str, SnapshotPlace | None] = {
    "first": SnapshotPlace.INITIAL | SnapshotPlace.FIRST | SnapshotPlace.FIRST_IN_TABLE,
    "first_in_data_collection": SnapshotPlace.INITIAL | SnapshotPlace.FIRST_IN_TABLE,
    "true": None,
    "last_in_data_collection": SnapshotPlace.INITIAL | SnapshotPlace.LAST_IN_TABLE,
    "last": SnapshotPlace.INITIAL | SnapshotPlace.LAST | SnapshotPlace.LAST_IN_TABLE,
    "incremental": SnapshotPlace(0),
}
