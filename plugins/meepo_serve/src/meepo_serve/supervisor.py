"""Supervision: every pipeline in its own thread, restarted with exponential backoff when it
fails, paused, resumed, restarted and reloaded on request, stopped within a bound.

A pipeline is built from the config file for every run, with
:func:`meepo_core.load_pipeline` (so a restart reconnects from scratch)
and run by the core's :class:`~meepo_core.runner.Runner`, exactly as ``meepo run`` does,
except that the runner's own metrics port is off: ``meepo serve`` serves every pipeline's
metrics on its ``/metrics``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from meepo_core import (
    ConfigError,
    MeepoError,
    Pipeline,
    Position,
    Runner,
    backoff_delay,
    load_pipeline,
)

from .config import ServeConfig, pipeline_fingerprints
from .history import SAMPLE_SECONDS, History

log = logging.getLogger("meepo.serve")

State = Literal["starting", "running", "paused", "failed", "restarting", "stopped", "invalid",
                "finished"]
#: States in which a pipeline is not delivering through no choice of the operator.
NOT_READY: frozenset[str] = frozenset({"failed", "restarting", "invalid", "starting"})
#: A run that lasted this long counts as healthy: the next failure starts the backoff over.
HEALTHY_RUN_SECONDS = 60.0
#: Seconds between two asks of each running source for its health (``Source.health``).
HEALTH_SECONDS = 5.0


@dataclasses.dataclass
class Totals:
    """Counts of the runs before the current one, so totals survive restarts."""

    events: int = 0
    batches: int = 0
    dead_letters: int = 0


class Supervised:
    """One pipeline under supervision. ``build`` returns a fresh :class:`Pipeline` (raising
    :class:`ConfigError` when its config is invalid); ``fingerprint`` identifies the config
    it was built from, so a reload restarts only pipelines whose config changed."""

    def __init__(self, name: str, build: Callable[[], Pipeline], fingerprint: str,
                 serve: ServeConfig) -> None:
        self.name = name
        self.fingerprint = fingerprint
        self._build = build
        self._serve = serve
        self.state: State = "starting"
        self.error: str | None = None
        self.error_at: datetime | None = None
        self.restarts = 0
        self.next_restart_at: float | None = None  # Unix time
        self.runner: Runner | None = None
        self.pipeline: Pipeline | None = None
        self.history = History()
        self.history.add(0, 0.0)  # rates count the events since the start
        #: The source's own problems (``Source.health``), refreshed every HEALTH_SECONDS.
        self.health: list[str] = []
        self.totals = Totals()
        self.started_at = time.time()
        self._stop = threading.Event()
        self._wake = threading.Event()  # ends a backoff wait early (restart, stop)
        self._paused = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name=f"meepo-serve-{name}",
                                        daemon=True)

    def build(self) -> Pipeline:
        """A fresh build of the pipeline from the config file as it is now (for side work
        such as snapshot requests and dead-letter replays); :class:`ConfigError` if invalid."""
        return self._build()

    # -- control --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask for a graceful stop (queued batches applied, checkpoint saved)."""
        self._stop.set()
        self._wake.set()
        runner = self.runner
        if runner is not None:
            runner.stop()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the stop; whether it happened."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            if self.runner is not None:
                self.runner.pause()
            if self.state == "running":
                self.state = "paused"

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            if self.runner is not None:
                self.runner.resume()
            if self.state == "paused":
                self.state = "running"

    def restart(self) -> None:
        """Stop the current run gracefully and start a new one at once (pause kept)."""
        runner = self.runner
        if runner is not None:
            runner.stop()
        self._wake.set()

    # -- reading --------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    def lag_seconds(self) -> float | None:
        runner = self.runner
        return runner.lag_seconds() if runner is not None and self.state in (
            "running", "paused") else None

    def events_total(self) -> int:
        runner = self.runner
        return self.totals.events + (runner.metrics.events_total if runner else 0)

    def batches_total(self) -> int:
        runner = self.runner
        return self.totals.batches + (runner.metrics.batches if runner else 0)

    def dead_letters_total(self) -> int:
        """Dead letters recorded since the service started."""
        runner = self.runner
        return self.totals.dead_letters + (runner.metrics.dead_letters if runner else 0)

    def position(self) -> Position | None:
        runner = self.runner
        return runner.delivered_position if runner is not None else None

    def checkpoint(self) -> Position | None:
        runner = self.runner
        if runner is not None and runner.metrics.position is not None:
            return runner.metrics.position
        pipeline = self.pipeline
        if pipeline is None:
            return None
        try:
            saved = pipeline.checkpoints.load()
        except MeepoError:
            return None
        return saved.position if saved is not None else None

    def snapshot_state(self) -> dict[str, Any] | None:
        """The snapshot jobs queued, running and done, as the checkpoint keeps them."""
        runner = self.runner
        coordinator = runner.snapshots if runner is not None else None
        if coordinator is None:
            return None
        try:
            return coordinator.state()
        except RuntimeError:  # changed while read by the applying thread: next poll
            return None

    def sample(self) -> None:
        self.history.add(self.events_total(), self.lag_seconds() or 0.0)

    def check_health(self) -> None:
        """Ask the running source for its problems (nothing to ask while not running)."""
        runner = self.runner
        if runner is None:
            self.health = []
            return
        try:
            self.health = runner.pipeline.source.health(self.name)
        except Exception as exc:  # a broken health check is a problem, not a crash
            self.health = [f"the source's health check failed: {type(exc).__name__}: {exc}"]

    # -- the supervising thread -----------------------------------------------------------
    def _main(self) -> None:
        failures = 0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                pipeline = self._build()
                settings = dataclasses.replace(pipeline.settings, metrics_port=None)
                pipeline = dataclasses.replace(pipeline, settings=settings)
                runner = Runner(pipeline)
            except ConfigError as exc:
                self._fail(str(exc), "invalid")
                log.error("pipeline %s: invalid config: %s", self.name, exc)
                return
            except Exception as exc:  # a plugin that cannot load, say: retried like a failure
                failures += 1
                self._back_off(describe(exc), failures)
                continue
            with self._lock:
                if self._paused:
                    runner.pause()
                self.pipeline, self.runner = pipeline, runner
                self.state = "paused" if self._paused else "running"
                self.next_restart_at = None
            if self._stop.is_set():  # a stop that came while building
                runner.stop()
            self._wake.clear()
            error: str | None = None
            try:
                runner.run()
            except Exception as exc:  # isolated: one pipeline's failure stops only it
                error = str(exc) if isinstance(exc, MeepoError) else describe(exc)
                log.error("pipeline %s failed: %s", self.name, error)
            finally:
                with self._lock:
                    self.totals.events += runner.metrics.events_total
                    self.totals.batches += runner.metrics.batches
                    self.totals.dead_letters += runner.metrics.dead_letters
                    self.runner = None
            if self._stop.is_set():
                self.state = "stopped"
                return
            if error is None and not self._wake.is_set():
                # the run ended by itself (snapshot = "initial_only", or a finite source)
                self.state = "finished"
                log.info("pipeline %s finished", self.name)
                return
            self.restarts += 1
            if error is None:  # a restart asked for
                self.state = "restarting"
                continue
            failures = 1 if time.monotonic() - began >= HEALTHY_RUN_SECONDS else failures + 1
            self._back_off(error, failures)

    def _back_off(self, error: str, failures: int) -> None:
        """Show the failure, then wait ``restart_backoff`` * 2^(failures-1) seconds (at
        most ``restart_backoff_max``), or until a restart or stop is asked for."""
        delay = backoff_delay(failures, self._serve.restart_backoff,
                              self._serve.restart_backoff_max)
        self._fail(error, "failed")
        self.next_restart_at = time.time() + delay
        log.info("pipeline %s: restart %d in %.1fs", self.name, self.restarts, delay)
        self._wake.wait(delay)
        self._wake.clear()
        self.state = "restarting"

    def _fail(self, error: str, state: State) -> None:
        self.state, self.error, self.error_at = state, error, datetime.now(UTC)


def describe(exc: BaseException) -> str:
    """``"Type: first line of the message"`` for an unexpected error."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclasses.dataclass
class ReloadResult:
    started: list[str]
    stopped: list[str]
    restarted: list[str]
    unchanged: list[str]


class Supervisor:
    """Every selected pipeline of one config file, each a :class:`Supervised`."""

    def __init__(self, config_path: Path, names: Iterable[str], serve: ServeConfig) -> None:
        self.config_path = config_path
        self.only = list(names)
        self.serve = serve
        self.pipelines: dict[str, Supervised] = {}
        self._lock = threading.Lock()
        self._reloading = threading.Lock()  # one reload at a time (SIGHUP and the API)
        self._closing = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="meepo-serve-sampler",
                                         daemon=True)
        self._health = threading.Thread(target=self._check_health, name="meepo-serve-health",
                                        daemon=True)

    def _load(self) -> dict[str, str]:
        """The selected pipelines' fingerprints; a selected name that the config does not
        have is a :class:`ConfigError` naming it."""
        prefix, fingerprints = pipeline_fingerprints(self.config_path)
        for name in self.only:
            if name not in fingerprints:
                known = ", ".join(sorted(fingerprints)) or "none"
                raise ConfigError(".".join(p for p in (prefix, "pipelines", name) if p),
                                  f"no such pipeline in {self.config_path}; configured "
                                  f"pipelines: {known}")
        return {name: fingerprints[name] for name in sorted(self.only or fingerprints)}

    def _supervised(self, name: str, fingerprint: str) -> Supervised:
        path = self.config_path
        return Supervised(name, lambda: load_pipeline(name, path), fingerprint, self.serve)

    def start(self) -> None:
        """Load the config (a file-level error raises :class:`ConfigError`) and start every
        selected pipeline; one whose own config is invalid shows as ``invalid``."""
        wanted = self._load()
        with self._lock:
            for name, fingerprint in wanted.items():
                self.pipelines[name] = self._supervised(name, fingerprint)
                self.pipelines[name].start()
        self._sampler.start()
        self._health.start()

    def reload(self) -> ReloadResult:
        """Read the config again: start added pipelines, stop removed ones, restart changed
        ones; the others keep running untouched. A config that cannot be read raises
        :class:`ConfigError` and changes nothing."""
        with self._reloading:
            return self._reload()

    def _reload(self) -> ReloadResult:
        wanted = self._load()
        result = ReloadResult([], [], [], [])
        with self._lock:
            current = dict(self.pipelines)
        for name in current:
            if name not in wanted:
                result.stopped.append(name)
        for name, fingerprint in wanted.items():
            if name not in current:
                result.started.append(name)
            elif current[name].fingerprint != fingerprint:
                result.restarted.append(name)
            else:
                result.unchanged.append(name)
        # stop what goes away or changes first: a changed pipeline's new run must not
        # overlap its old one (they share the checkpoint)
        leaving = [current[name] for name in (*result.stopped, *result.restarted)]
        for supervised in leaving:
            supervised.stop()
        deadline = time.monotonic() + self.serve.stop_timeout
        for supervised in leaving:
            supervised.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for name in result.stopped:
                self.pipelines.pop(name, None)
            for name in (*result.started, *result.restarted):
                replacement = self._supervised(name, wanted[name])
                old = current.get(name)
                if old is not None:
                    replacement.restarts = old.restarts
                    replacement.history = old.history
                    replacement.totals = dataclasses.replace(old.totals)
                self.pipelines[name] = replacement
                replacement.start()
        log.info("reloaded %s: started %s, stopped %s, restarted %s", self.config_path,
                 result.started or "none", result.stopped or "none", result.restarted or "none")
        return result

    def stop(self) -> list[str]:
        """Stop every pipeline gracefully, waiting at most ``stop_timeout`` in all; the
        names of those that did not stop in time."""
        self._closing.set()
        with self._lock:
            pipelines = list(self.pipelines.values())
        for supervised in pipelines:
            supervised.stop()
        deadline = time.monotonic() + self.serve.stop_timeout
        late = [s.name for s in pipelines
                if not s.join(max(0.0, deadline - time.monotonic()))]
        if late:
            log.warning("pipelines that did not stop within %.0fs: %s",
                        self.serve.stop_timeout, ", ".join(late))
        return late

    def get(self, name: str) -> Supervised | None:
        with self._lock:
            return self.pipelines.get(name)

    def all(self) -> list[Supervised]:
        with self._lock:
            return [self.pipelines[name] for name in sorted(self.pipelines)]

    def _sample(self) -> None:
        while not self._closing.wait(SAMPLE_SECONDS):
            for supervised in self.all():
                supervised.sample()

    def _check_health(self) -> None:
        while not self._closing.wait(HEALTH_SECONDS):
            for supervised in self.all():
                supervised.check_health()
