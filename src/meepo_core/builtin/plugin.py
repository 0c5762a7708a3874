"""The built-in plugin: print, jsonl, memory and null types; the transforms; file and none
stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..checkpoints import FileCheckpointStore, MemoryCheckpointStore
from ..dead_letters import FileDeadLetterStore
from ..hookspecs import hookimpl
from .jsonl_sink import JsonlSink
from .jsonl_source import JsonlSource
from .memory_sink import MemorySink
from .memory_source import MemorySource
from .null_sink import NullSink
from .print_sink import PrintSink


@hookimpl
def meepo_register_sources(register: Callable[[str, Any], None]) -> None:
    register("jsonl", JsonlSource)
    register("memory", MemorySource)


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("print", PrintSink)
    register("jsonl", JsonlSink)
    register("memory", MemorySink)
    register("null", NullSink)


@hookimpl
def meepo_register_transforms(register: Callable[[str, Any], None]) -> None:
    # as "module:Class" strings: the filter's CEL library loads only when a pipeline uses it
    for name in ("filter", "mask", "hash", "drop_columns", "keep_columns", "rename", "route",
                 "python"):
        class_name = "".join(part.title() for part in name.split("_")) + "Transform"
        register(name, f"meepo_core.transforms.{name}_transform:{class_name}")


def file_path(url: str, base_dir: Path) -> Path:
    """``file:PATH`` (relative to the config's directory) as an absolute path."""
    raw = url.removeprefix("file:").removeprefix("//")
    if not raw:
        raise ValueError(f"{url!r} has no path; write file:PATH, e.g. file:.meepo/orders.json")
    return (base_dir / Path(raw).expanduser()).resolve()


@hookimpl
def meepo_register_checkpoint_stores(register: Callable[[str, Any], None]) -> None:
    register(
        "file", lambda url, pipeline, base: FileCheckpointStore(file_path(url, base), pipeline)
    )
    register("none", lambda url, pipeline, base: MemoryCheckpointStore())


@hookimpl
def meepo_register_dead_letter_stores(register: Callable[[str, Any], None]) -> None:
    register("file", lambda url, pipeline, base: FileDeadLetterStore(file_path(url, base)))
