"""Listing and replaying a pipeline's dead letters (the ``file:`` store).

The store is append-only and the running pipeline keeps appending to it, so a replay never
rewrites it: the line numbers of replayed letters go to a side file ``<store>.replayed``
(one number per line), and a listing marks them ``replayed``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from meepo_core import Batch, Delivery, FileDeadLetterStore, MeepoError, Pipeline, event_from_dict


class NotListable(MeepoError):
    """The pipeline's dead-letter store cannot be read back (only ``file:`` can)."""


def store_path(pipeline: Pipeline) -> Path:
    store = pipeline.dead_letters
    if not isinstance(store, FileDeadLetterStore):
        raise NotListable(
            f"pipeline {pipeline.name}: its dead-letter store {store.description or '?'} "
            "cannot be listed here; only file: stores can")
    return store.path


def _replayed(path: Path) -> set[int]:
    marks = path.with_name(path.name + ".replayed")
    if not marks.exists():
        return set()
    return {int(line) for line in marks.read_text().split()}


def list_letters(pipeline: Pipeline, limit: int = 100) -> tuple[int, int, list[dict[str, Any]]]:
    """(letters in the store, of them not replayed yet, the last ``limit`` letters each with
    its ``index`` (line number) and ``replayed``)."""
    path = store_path(pipeline)
    if not path.exists():
        return 0, 0, []
    replayed = _replayed(path)
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.strip():
            records.append({"index": index, "replayed": index in replayed, **json.loads(line)})
    pending = sum(1 for r in records if not r["replayed"])
    return len(records), pending, records[-limit:] if limit else []


def count_pending(pipeline: Pipeline) -> int:
    try:
        return list_letters(pipeline, limit=0)[1]
    except (NotListable, OSError, ValueError):
        return 0


@dataclasses.dataclass
class ReplayResult:
    replayed: list[int]
    failed: dict[int, str]


def replay(pipeline: Pipeline, indexes: list[int] | None) -> ReplayResult:
    """Apply the letters at ``indexes`` (default: every one not replayed yet) again, each to
    the sink that failed it, with the pipeline's retry policy; mark those that succeed.
    ``pipeline`` must be a fresh build (its sinks are opened and closed here)."""
    path = store_path(pipeline)
    _, _, letters = list_letters(pipeline, limit=10**9)
    by_index = {letter["index"]: letter for letter in letters}
    unknown = [i for i in indexes or [] if i not in by_index]
    if unknown:
        raise KeyError(unknown[0])
    chosen = [by_index[i] for i in indexes] if indexes else [
        letter for letter in letters if not letter["replayed"]]
    result = ReplayResult([], {})
    side = dataclasses.replace(pipeline, purpose="replay")
    sinks = dict(side.sinks)
    by_sink: dict[str, list[dict[str, Any]]] = {}
    for letter in chosen:
        by_sink.setdefault(letter["sink"], []).append(letter)
    for label, group in by_sink.items():
        sink = sinks.get(label)
        if sink is None:
            for letter in group:
                result.failed[letter["index"]] = f"the pipeline has no sink {label!r} any more"
            continue
        try:
            delivery = Delivery([(label, sink)], side.context()).open()
        except MeepoError as exc:
            for letter in group:
                result.failed[letter["index"]] = str(exc)
            continue
        try:
            for letter in group:
                try:
                    delivery.apply(Batch((event_from_dict(letter["event"]),), None))
                except (MeepoError, ValueError, KeyError, TypeError) as exc:
                    result.failed[letter["index"]] = str(exc)
                else:
                    result.replayed.append(letter["index"])
        finally:
            delivery.close()
    if result.replayed:
        marks = path.with_name(path.name + ".replayed")
        with marks.open("a", encoding="utf-8") as handle:
            handle.write("".join(f"{i}\n" for i in result.replayed))
    return result
