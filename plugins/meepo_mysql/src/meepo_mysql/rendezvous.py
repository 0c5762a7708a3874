"""Where the ``mysql`` source's two threads meet for a snapshot chunk: the applying thread,
which reads the chunk, pauses the binlog reader at a known position and places the chunk's
watermarks there (see :mod:`meepo_mysql.snapshot`)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence

from meepo_core import SourceError

from .positions import BinlogPosition, file_index


class PauseRendezvous:
    """Where the snapshot reader (the runner's applying thread) and the binlog reader (the
    reader thread, in :meth:`~meepo_mysql.source.MySQLSource.stream`) meet: the snapshot
    reader pauses the binlog reader between two events, reads a chunk consistent with a
    binlog position at or after the pause, places the chunk's watermarks at that position
    and resumes the reader (:meth:`pause`, then :meth:`place_and_resume` or :meth:`resume`).
    So a chunk's position is never behind the stream. A watermark alone is placed without a
    pause (:meth:`place`).

    ``pending`` are the binlog positions the stream must report as watermarks when it
    reaches them. The binlog reader calls :meth:`point` between events (only while
    :attr:`wanted` is set: one attribute read per event otherwise), and
    :meth:`suspend`/:meth:`unsuspend` around its yields, where it reads nothing anyway.
    No chunk starts before the binlog reader has reported a position (:attr:`ready`):
    until the dump is open the stream's start is not fixed (``latest``), and a chunk read
    before it would miss the changes committed between the read and that start.
    A binlog reader waiting for the server also waits on :attr:`wake_socket`, so that a
    pause or a new watermark is seen at once rather than at its next idle tick.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.pending: list[tuple[int, int, str]] = []  # (file index, pos, mark), in order
        self.wanted = False  # a pause is asked for
        self._stopped = True  # the binlog reader reads nothing now (paused, or not running)
        #: Where the binlog reader stopped; None until it reported a position in a known
        #: binlog file (a GTID start learns its file from the dump's first rotate).
        self.position: tuple[int, int] | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None

    @property
    def wake_socket(self) -> socket.socket:
        """Readable when the snapshot reader wants the binlog reader's attention; the
        reader drains it (non-blocking). Closed by :meth:`close`."""
        if self._wake is None:
            pair = socket.socketpair()
            for end in pair:
                end.setblocking(False)
            self._wake = pair
        return self._wake[0]

    def _nudge(self) -> None:
        if self._wake is not None:
            with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
                self._wake[1].send(b"\0")

    def close(self) -> None:
        wake, self._wake = self._wake, None
        for end in wake or ():
            end.close()

    # -- the snapshot reader's side ------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether the binlog reader has reported where it reads: a chunk may start."""
        return self.position is not None

    def pause(self, timeout: float = 30.0) -> tuple[int, int]:
        """Stop the binlog reader between two events; its position then. Refused before
        the reader has reported a position (see :attr:`ready`)."""
        with self._cond:
            if self.position is None:
                raise SourceError("a snapshot chunk cannot start before the binlog reader "
                                  "knows its start position")
            self.wanted = True
            self._nudge()
            if not self._cond.wait_for(lambda: self._stopped, timeout):
                self.wanted = False
                raise SourceError(f"the binlog reader did not pause within {timeout:.0f}s "
                                  "for a snapshot chunk")
            return self.position

    def place_and_resume(self, position: BinlogPosition, marks: Sequence[str]) -> None:
        """Report ``marks`` when the stream reaches ``position``; let the reader go on."""
        with self._cond:
            self._place(position, marks)
            self.wanted = False
            self._cond.notify_all()
            self._nudge()

    def place(self, position: BinlogPosition, marks: Sequence[str]) -> None:
        """Report ``marks`` when the stream reaches ``position`` (no pause involved)."""
        with self._cond:
            self._place(position, marks)
            self._nudge()

    def _place(self, position: BinlogPosition, marks: Sequence[str]) -> None:
        index = file_index(position.file)
        self.pending = [*self.pending, *((index, position.pos, mark) for mark in marks)]

    def resume(self) -> None:
        """Let the reader go on without marks (the chunk could not be read)."""
        with self._cond:
            self.wanted = False
            self._cond.notify_all()

    # -- the binlog reader's side --------------------------------------------------------
    def running(self, position: tuple[int, int] | None) -> None:
        """The binlog reader starts reading (at ``position``) or, with None, stops."""
        with self._cond:
            self._stopped = position is None
            if position is not None and position[0]:
                self.position = position
            self._cond.notify_all()
        if position is not None and self.wanted:
            self.point(position)

    def point(self, position: tuple[int, int]) -> None:
        """Between two events, at ``position``: wait here while a pause is wanted (not in
        an unknown file, file index 0: no chunk may be placed there)."""
        if not position[0]:
            return
        with self._cond:
            self.position = position
            if not self.wanted:
                return
            self._stopped = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self.wanted)
            self._stopped = False

    def suspend(self, position: tuple[int, int]) -> None:
        """Before a yield: the reader reads nothing until :meth:`unsuspend`."""
        with self._cond:
            if position[0]:
                self.position = position
            self._stopped = True
            self._cond.notify_all()

    def unsuspend(self) -> None:
        """After a yield: wait while a pause is wanted, then read on."""
        with self._cond:
            self._cond.wait_for(lambda: not self.wanted)
            self._stopped = False

    def due(self, index: int, pos: int) -> list[tuple[int, str]]:
        """The marks at or before ``(index, pos)``, removed, as ``(sequence, mark)``."""
        with self._cond:
            taken = [m for m in self.pending if (m[0], m[1]) <= (index, pos)]
            if taken:
                self.pending = [m for m in self.pending if (m[0], m[1]) > (index, pos)]
        return [((i << 32) | p, mark) for i, p, mark in taken]
