"""Adjustments of third-party behaviour, each with the version it was written for and why."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

import uvicorn


class Server(uvicorn.Server):
    """uvicorn 0.55's :class:`uvicorn.Server` with our signal handling.

    ``capture_signals`` (a public method of ``Server`` since uvicorn 0.29) is overridden
    because uvicorn re-raises SIGTERM/SIGINT after its shutdown, which would end
    ``meepo serve`` with the signal's status before the pipelines were stopped and would
    make a graceful stop exit non-zero; it also knows no SIGHUP. Here SIGTERM and SIGINT
    ask the server to exit (a second SIGINT forces it), and SIGHUP calls ``on_hangup`` in a
    thread of its own (a reload must not run inside a signal handler).
    """

    def __init__(self, config: uvicorn.Config, on_hangup: Callable[[], Any]) -> None:
        super().__init__(config)
        self.on_hangup = on_hangup

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def exit_(signum: int, frame: FrameType | None) -> None:
            if self.should_exit and signum == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

        def hangup(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=self.on_hangup, name="meepo-serve-reload",
                             daemon=True).start()

        handlers = {signal.SIGTERM: exit_, signal.SIGINT: exit_, signal.SIGHUP: hangup}
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
