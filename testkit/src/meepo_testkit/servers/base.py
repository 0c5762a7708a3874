"""The base launcher shared by every test server: one process, a port, a data dir, a log.

Each launcher runs a real server process from the machine's installed binaries on a free
``127.0.0.1`` port with its data under a caller-given directory.  Contracts shared by all:

* ``start()`` is idempotent; it blocks until the server answers a real request, or raises
  :class:`ServiceError` naming the service, port and reason, followed by the tail of its log.
* ``stop()`` shuts the server down cleanly (signal, wait, then SIGKILL after a timeout) and keeps
  its data; ``restart()`` is ``stop()`` + ``start()`` on the same port and data directory.
* ``close()`` stops the server and removes anything it keeps outside ``base_dir``; the context
  manager protocol is ``start()`` / ``close()``.
* Servers still running when the interpreter exits are stopped by an ``atexit`` hook.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self

LOCALHOST = "127.0.0.1"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin.

class ServiceError(RuntimeError):
    """A service could not be set up, started or used."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


_RUNNING: weakref.WeakSet[Service] = weakref.WeakSet()
_TEMP_DIRS: set[Path] = set()
_ATEXIT_REGISTERED = False


def _cleanup_at_exit() -> None:
    for service in list(_RUNNING):
        with contextlib.suppress(Exception):
            service.close()
    for path in list(_TEMP_DIRS):
        shutil.rmtree(path, ignore_errors=True)


def _register_atexit() -> None:
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        atexit.register(_cleanup_at_exit)
        _ATEXIT_REGISTERED = True


def private_tempdir(prefix: str) -> Path:
    """A new dir under the system temp dir, removed by ``remove_tempdir`` or at exit."""
    _register_atexit()
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _TEMP_DIRS.add(path)
    return path


def remove_tempdir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
        _TEMP_DIRS.discard(path)


def short_dir(preferred: Path, leaf: str, prefix: str) -> tuple[Path, Path | None]:
    """``preferred`` if ``preferred/leaf`` fits in a unix socket path, else a private temp dir.

    The second item is the temp dir made, if any (the caller removes it on close).
    """
    if len(str(preferred / leaf)) <= _SOCKET_PATH_MAX:
        return preferred, None
    path = private_tempdir(prefix)
    return path, path


class _PortInUse(ServiceError):
    """The server exited at startup because its port was taken."""


class Service:
    """Base launcher: one server process, a port, a data dir and a log file in ``base_dir``.

    Subclasses give ``command()`` and ``is_ready()``; they may override ``initialize()`` (one-time
    setup before the first start), ``after_start()`` (idempotent provisioning after each start)
    and ``popen_kwargs()``.
    """

    name: ClassVar[str] = "service"
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    signal_group: ClassVar[bool] = True  # signal the whole process group, not just the leader

    def __init__(
        self, base_dir: Path, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.host = LOCALHOST
        self.port = port if port is not None else free_port()
        self._may_repick_port = port is None  # until the first successful start
        self.startup_timeout = startup_timeout
        self.log_path = self.base_dir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._initialized = False

    # -- subclass hooks -------------------------------------------------------------------
    def command(self) -> Sequence[str]:
        """The server's argv; it must stay in the foreground."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        """True once the server answers a real request; may raise (treated as not ready)."""
        raise NotImplementedError

    def initialize(self) -> None:
        """One-time setup before the first start (e.g. creating the data dir)."""

    def after_start(self) -> None:
        """Idempotent provisioning after every successful start."""

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for :class:`subprocess.Popen`."""
        return {}

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self) -> Self:
        """Start the server and wait until it is ready; a no-op if it already runs.

        If the port was picked by :func:`free_port` and another process took it before the
        first start, a new port is picked (up to 3 tries).
        """
        if self.running:
            return self
        if not self._initialized:
            self.initialize()
            self._initialized = True
        for attempt in range(3):
            try:
                self._launch()
                break
            except _PortInUse:
                if not self._may_repick_port or attempt == 2:
                    raise
                self.port = free_port()
        self._may_repick_port = False
        try:
            self.after_start()
        except Exception as exc:
            self.stop()
            raise self._error(f"provisioning failed: {exc}") from exc
        return self

    def _launch(self) -> None:
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        argv = [str(arg) for arg in self.command()]
        self._log.write(f"--- meepo: starting {shlex.join(argv)}\n".encode())
        self._log.flush()
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self.popen_kwargs(),
            )
        except OSError as exc:
            self._close_log()
            raise self._error(f"cannot run {argv[0]}: {exc}") from exc
        _track(self)
        self._wait_ready(log_offset)

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down cleanly, keeping its data; SIGKILL after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            self._signal(proc, self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(10)
        if proc is not None and self.signal_group:
            # Reap helpers left in the group (e.g. a wrapper's child).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._close_log()
        _RUNNING.discard(self)

    def restart(self) -> Self:
        """Stop, then start again on the same port and data dir (data is kept)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and release anything kept outside ``base_dir``."""
        self.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} at {self.base_dir}>"

    # -- helpers ---------------------------------------------------------------------------
    def _wait_ready(self, log_offset: int) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last: Exception | None = None
        while True:
            code = proc.poll()
            if code is not None:
                self.stop()
                with self.log_path.open("rb") as log:
                    log.seek(log_offset)
                    in_use = b"in use" in log.read().lower()
                reason = f"process exited with code {code} during startup"
                if in_use:
                    raise self._error(f"port in use; {reason}", _PortInUse)
                raise self._error(reason)
            try:
                # is_ready() must talk to *this* process, not another one on the port.
                if self.is_ready() and proc.poll() is None:
                    return
            except Exception as exc:
                last = exc
            if time.monotonic() > deadline:
                self.stop(timeout=5)
                detail = f" (last error: {last})" if last else ""
                raise self._error(f"not ready after {self.startup_timeout:.0f}s{detail}")
            time.sleep(0.1)

    def _signal(self, proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.signal_group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _error(self, reason: str, cls: type[ServiceError] = ServiceError) -> ServiceError:
        return cls(
            f"{self.name} on {self.host}:{self.port} failed: {reason}\n"
            f"--- last lines of {self.log_path} ---\n{_tail(self.log_path)}"
        )

    def _run_setup(self, command: Sequence[str | Path], **kwargs: Any) -> None:
        """Run a one-shot setup command, its output appended to the log; raise on failure."""
        argv = [str(arg) for arg in command]
        with self.log_path.open("ab") as log:
            log.write(f"--- meepo: running {shlex.join(argv)}\n".encode())
            log.flush()
            try:
                code = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=False,
                    timeout=self.startup_timeout,
                    **kwargs,
                ).returncode
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise self._error(f"{Path(argv[0]).name}: {exc}") from exc
        if code != 0:
            raise self._error(f"{Path(argv[0]).name} exited with code {code}")


def _track(service: Service) -> None:
    _register_atexit()
    _RUNNING.add(service)


def find_binary(names: Sequence[str], extra_dirs: Sequence[Path] = ()) -> str:
    for name in names:
        for directory in extra_dirs:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        found = shutil.which(name)
        if found:
            return found
    raise ServiceError(f"none of {', '.join(names)} found (looked in {list(extra_dirs)} and PATH)")
