"""``meepo transform NAME --input events.jsonl``: what each sink of a pipeline would
receive for recorded events, without connecting anything or writing anywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ConfigError
from ..events import Batch, RowEvent
from ..pipeline import Pipeline
from ..serialization import event_from_json, event_to_json
from .chain import PipelineTransforms


def read_events(path: Path) -> list[RowEvent]:
    """The events of a ``jsonl`` audit log (one event per line, as the ``jsonl`` sink
    writes them); a line that is not an event is a usage error naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError("--input", f"cannot read {path}: {exc.strerror}") from None
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(event_from_json(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError("--input", f"{path} line {number} is not a meepo event "
                              f"({type(exc).__name__}: {exc}); give a log written by the "
                              "jsonl sink") from None
    return events


def sink_labels(pipeline: Pipeline, wanted: str | None) -> list[str]:
    """The labels of the sinks to show: all, or the one ``wanted`` names (``"1"``,
    ``"sinks[1]"``, ``"sinks[1] kafka"`` or a type used by one sink only)."""
    labels = [label for label, _ in pipeline.sinks]
    if wanted is None:
        return labels
    found = [label for label in labels
             if wanted in (label, label.split(" ")[0], label.split(" ", 1)[1])
             or (wanted.isdigit() and label.startswith(f"sinks[{wanted}] "))]
    if len(found) != 1:
        raise ConfigError("--sink", f"{wanted!r} names {'no' if not found else 'more than one'} "
                          f"sink of pipeline {pipeline.name}; its sinks: {', '.join(labels)}")
    return found


def dry_run(
    pipeline: Pipeline, events: list[RowEvent], labels: list[str],
    report: Callable[[RowEvent, str, str], None],
) -> Iterator[str]:
    """Lines to print: per sink, a ``# LABEL: N of M events`` header, then each event it
    would receive as JSON (with ``destination`` where a route set one). Events a transform
    raises on go to ``report`` instead of the dead-letter store."""
    transforms = pipeline.transforms or PipelineTransforms()
    transforms.open(pipeline.context())
    batches = transforms.batches(Batch(tuple(events)), labels, report)
    for label in labels:
        received = batches[label].events
        yield f"# {label}: {len(received)} of {len(events)} events"
        for event in received:
            yield event_to_json(event)
