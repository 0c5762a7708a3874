"""``sqlalchemy-session``: the source of a pipeline fed in-process by ``install()``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Self

from meepo_core import Batch, Options, Position, Source, SourceError

if TYPE_CHECKING:
    from meepo_core import PipelineContext


class SessionPipelineSource(Source):
    """Marks a pipeline whose sinks an application feeds with
    ``meepo_sqlalchemy.install(sessionmaker, pipeline="NAME")``. It has no options and
    cannot be run by ``meepo run``: the events exist only inside that application."""

    OPTIONS = ()  # none

    @classmethod
    def from_options(cls, options: Options) -> Self:
        options.done()
        return cls()

    def stream(
        self, start: Position | None, context: PipelineContext, *, once: bool
    ) -> Iterator[Batch]:
        raise SourceError(
            f"pipeline {context.pipeline}: a sqlalchemy-session source is fed inside the "
            "application by meepo_sqlalchemy.install(..., pipeline=...); it cannot be run "
            "with meepo run. For a relay process use the outbox: "
            "install(..., outbox=True) and source = { type = \"sqlalchemy-outbox\", url = ... }"
        )
