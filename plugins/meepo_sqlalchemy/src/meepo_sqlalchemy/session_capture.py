"""``install()``: meepo's session source, on a Session, a sessionmaker or all sessions.

Lifecycle of one root transaction:

* ``before_flush`` / ``after_flush``: the flushed rows become events (see
  :mod:`meepo_sqlalchemy.images`); bulk ORM statements are captured in ``do_orm_execute``
  (see :mod:`meepo_sqlalchemy.bulk`). Each event is tagged with the savepoints
  (``begin_nested``) open when it was recorded.
* a savepoint rolled back drops exactly the events tagged with it; a root rollback, or a
  session closed without commit, drops everything.
* outbox mode: ``before_commit`` of the root transaction flushes, then writes the events
  to the outbox table on the same connection, in the same transaction.
* in-process mode: ``after_commit`` of the root transaction publishes the events as one
  batch to the sinks, each table's first rows in the process preceded by a ``describe`` of
  its mapped ``Table`` (see :mod:`meepo_sqlalchemy.schema_tracking`).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.engine import Result
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from meepo_core import DeadLetterStore, RowEvent, Sink

from . import bulk, images
from .outbox import DEFAULT_NAME, OutboxTables, outbox_tables, write_events
from .publisher import Publisher
from .schema_tracking import MappedTables

log = logging.getLogger("meepo.sqlalchemy")


@dataclass
class _Recorded:
    event: RowEvent
    savepoints: tuple[SessionTransaction, ...]


@dataclass
class _SessionLog:
    """What one session recorded in its current root transaction."""

    events: list[_Recorded] = field(default_factory=list)
    snapshot: images.Snapshot | None = None


@dataclass
class Installation:
    """One ``install()`` call: its settings and the listeners it added."""

    target: Any
    accept: images.TableFilter
    full_images: bool
    capture_bulk: bool
    publisher: Publisher | None
    outbox: OutboxTables | None
    key: str = field(default_factory=lambda: f"meepo_sqlalchemy.{uuid.uuid4().hex}")
    listeners: list[tuple[str, Any]] = field(default_factory=list)
    #: in-process mode: each table's definition, described at its first published row
    mapped: MappedTables = field(default_factory=MappedTables)

    def state(self, session: Session) -> _SessionLog:
        found = session.info.get(self.key)
        if found is None:
            found = session.info[self.key] = _SessionLog()
        return found

    # -- recording ---------------------------------------------------------------------
    def record(self, session: Session, events: list[RowEvent]) -> None:
        if not events:
            return
        savepoints = []
        trans = session.get_nested_transaction()
        while trans is not None:
            if trans.nested:
                savepoints.append(trans)
            trans = trans.parent
        tags = tuple(savepoints)
        self.state(session).events.extend(_Recorded(e, tags) for e in events)

    def before_flush(self, session: Session, context: UOWTransaction, instances: Any) -> None:
        self.state(session).snapshot = images.snapshot(session, self.accept, self.full_images)

    def after_flush(self, session: Session, context: UOWTransaction) -> None:
        log_ = self.state(session)
        if self.publisher is not None:
            for mapper in context.mappers:
                self.mapped.note(mapper.tables, session.get_bind(mapper).dialect)
        snap, log_.snapshot = log_.snapshot, None
        self.record(session, images.flush_events(session, self.accept, self.full_images, snap))

    def do_orm_execute(self, state: ORMExecuteState) -> Result[Any] | None:
        if self.publisher is not None and state.bind_mapper is not None:
            self.mapped.note(state.bind_mapper.tables,
                             state.session.get_bind(state.bind_mapper).dialect)
        return bulk.capture(state, self.accept, self.full_images,
                            lambda events: self.record(state.session, events))

    # -- transaction ends ----------------------------------------------------------------
    def _take(self, session: Session) -> list[RowEvent]:
        log_ = session.info.pop(self.key, None)
        if not log_ or not log_.events:
            return []
        txid = uuid.uuid4().hex
        now = datetime.now(UTC)
        return [dataclasses.replace(r.event, txid=txid, committed_at=now) for r in log_.events]

    def before_commit(self, session: Session) -> None:
        if self.outbox is None or session.in_nested_transaction():
            return  # a savepoint release: its events stay with the enclosing transaction
        session.flush()  # so changes still pending are recorded before we write
        events = self._take(session)
        if events:
            conn = session.connection(bind_arguments={"clause": self.outbox.outbox})
            write_events(conn, self.outbox, events[0].txid or "", events)

    def after_commit(self, session: Session) -> None:
        if session.in_nested_transaction():
            return
        events = self._take(session)
        if not events:
            return
        if self.publisher is None:  # outbox mode, but before_commit did not run for root
            log.error("meepo: %d events committed without reaching the outbox (the root "
                      "transaction was committed while a savepoint was still open)",
                      len(events))
            return
        self.publisher.publish(events, self.mapped.placed(events))

    def after_soft_rollback(self, session: Session, previous: SessionTransaction) -> None:
        log_ = session.info.get(self.key)
        if log_ is None:
            return
        if previous.parent is None:
            session.info.pop(self.key, None)
        elif previous.nested:
            log_.events = [r for r in log_.events if previous not in r.savepoints]

    def after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # commit already took them; else: closed, rolled back
            session.info.pop(self.key, None)


_installed: list[Installation] = []


def install(
    target: Any,
    *,
    tables: Iterable[str | Table] | None = None,
    sinks: Sequence[Sink] | None = None,
    pipeline: str | None = None,
    config: str | Path | None = None,
    outbox: bool | str = False,
    outbox_schema: str | None = None,
    full_images: bool = True,
    capture_bulk: bool = True,
    dead_letters: DeadLetterStore | None = None,
) -> Installation:
    """Send the row changes made through ``target`` to meepo.

    ``target`` is a ``Session``, a ``sessionmaker`` (or ``scoped_session``), or the
    ``Session`` class itself for every session in the process. ``tables`` limits events to
    these tables (names, ``schema.table`` or ``Table`` objects); default all.

    Exactly one destination:

    * ``sinks=[...]``: meepo :class:`~meepo_core.sink.Sink` instances, applied in-process
      right after each commit, one batch per transaction;
    * ``pipeline="name"`` (and optionally ``config=path``): the sinks of that pipeline in
      the meepo config, applied the same way;
    * ``outbox=True`` (or the outbox table's name): events are written to the outbox
      table inside the committing transaction, and a ``sqlalchemy-outbox`` pipeline relays
      them (guaranteed delivery). Create the table once with :func:`create_outbox`.

    ``full_images`` reads columns the session has not loaded from the database so that
    before/after images are complete (at most one SELECT per table and flush, only when
    something is missing). ``capture_bulk`` captures bulk ORM statements (see
    :mod:`meepo_sqlalchemy.bulk` for their cost). Returns the installation, for
    :func:`uninstall`.
    """
    chosen = [name for name, given in (("sinks", sinks is not None),
                                       ("pipeline", pipeline is not None),
                                       ("outbox", bool(outbox))) if given]
    if len(chosen) != 1:
        raise ValueError("install() needs exactly one of sinks=[...], pipeline='name' or "
                         f"outbox=True; got {', '.join(chosen) or 'none'}")
    publisher: Publisher | None = None
    tables_: OutboxTables | None = None
    if sinks is not None:
        publisher = Publisher.for_sinks(sinks, dead_letters=dead_letters)
    elif pipeline is not None:
        publisher = Publisher.for_pipeline(pipeline, config)
    else:
        name = outbox if isinstance(outbox, str) else DEFAULT_NAME
        tables_ = outbox_tables(name, outbox_schema)
    inst = Installation(target, images.TableFilter.of(tables), full_images, capture_bulk,
                        publisher, tables_)
    hooks: list[tuple[str, Any]] = [
        ("before_flush", inst.before_flush),
        ("after_flush", inst.after_flush),
        ("before_commit", inst.before_commit),
        ("after_commit", inst.after_commit),
        ("after_soft_rollback", inst.after_soft_rollback),
        ("after_transaction_end", inst.after_transaction_end),
    ]
    if capture_bulk:
        hooks.append(("do_orm_execute", inst.do_orm_execute))
    for name_, fn in hooks:
        event.listen(target, name_, fn)
        inst.listeners.append((name_, fn))
    _installed.append(inst)
    return inst


def uninstall(installation: Installation) -> None:
    """Remove the listeners of ``installation`` and close its sinks."""
    for name, fn in installation.listeners:
        event.remove(installation.target, name, fn)
    installation.listeners.clear()
    if installation.publisher is not None:
        installation.publisher.close()
    if installation in _installed:
        _installed.remove(installation)
