"""``describe_error``: the one-line form of an exception that the core and the plugins share,
and its extension point for a driver's own error type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

from meepo_core import (
    Batch,
    Delivery,
    FileDeadLetterStore,
    Options,
    PipelineSettings,
    RowEvent,
    Sink,
    describe_error,
)


def test_type_and_first_line_of_the_message() -> None:
    assert describe_error(ConnectionError("refused\nat line 2")) == "ConnectionError: refused"
    assert describe_error(ValueError("  spaced  ")) == "ValueError: spaced"


def test_an_empty_message_gives_the_type_alone() -> None:
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert describe_error(RuntimeError("  \n ")) == "RuntimeError"


class DriverError(Exception):
    """Stands in for a database driver's base exception, carrying a server error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class LockTimeout(DriverError):
    pass


@describe_error.register
def _describe_driver_error(exc: DriverError) -> str:
    return f"server error {exc.code}: {exc.message}"


def test_a_registered_driver_type_and_its_subclasses_use_their_own_form() -> None:
    assert describe_error(DriverError(2006, "gone away")) == "server error 2006: gone away"
    assert describe_error(LockTimeout(1205, "lock wait")) == "server error 1205: lock wait"
    assert describe_error(KeyError("other")) == "KeyError: 'other'"


class DriverErrorSinkFake(Sink):
    """Fails every apply with a driver error (a fake: a core test has no driver)."""

    @classmethod
    def from_options(cls, options: Options) -> Self:
        return cls()

    def apply(self, batch: Batch) -> None:
        raise LockTimeout(1205, "lock wait timeout exceeded")


def test_the_core_uses_the_registered_form_in_dead_letters(tmp_path: Path) -> None:
    store = FileDeadLetterStore(tmp_path / "dead.jsonl")
    engine = Delivery.to_sinks(
        [DriverErrorSinkFake()], name="p", dead_letters=store, when_exhausted="dead_letter",
        settings=PipelineSettings(max_retries=0),
    )
    with engine:
        engine.apply(Batch((RowEvent("s", "t", "write", 1, None, {"id": 1}),), 1))
    [letter] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert letter["error"] == "server error 1205: lock wait timeout exceeded"
