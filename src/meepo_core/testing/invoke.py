"""Invoking the real ``meepo`` CLI in a subprocess from tests, against a written config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (inline tables and arrays; enough for configs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def write_config(directory: Path, pipelines: dict[str, dict[str, Any]], **meepo: Any) -> Path:
    """Write ``directory/pyproject.toml`` with ``[tool.meepo.pipelines.NAME]`` tables."""
    lines = ["[tool.meepo]"] + [f"{k} = {toml_value(v)}" for k, v in meepo.items()]
    for name, table in pipelines.items():
        lines.append(f"\n[tool.meepo.pipelines.{json.dumps(name)}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    path = directory / "pyproject.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def meepo_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from meepo_core.cli import main; main()", *args]


def run_meepo(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``meepo ARGS`` in ``cwd`` with this interpreter; returns the finished process."""
    return subprocess.run(
        meepo_command(*args),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class RunningMeepo:
    """``meepo ARGS`` running in ``cwd`` (this interpreter), stderr captured; a context
    manager that terminates it on exit. :meth:`wait` polls a condition while the process
    must stay alive; :meth:`lines` reads a jsonl sink's output as it grows."""

    def __init__(self, *args: str, cwd: Path, timeout: float = 60) -> None:
        self.cwd = cwd
        self.timeout = timeout
        self.process = subprocess.Popen(meepo_command(*args), cwd=cwd, stderr=subprocess.PIPE)

    def __enter__(self) -> RunningMeepo:
        return self

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.process.wait(30)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def lines(self, path: str = "out.jsonl") -> list[dict[str, Any]]:
        """The JSON lines of ``cwd/path`` so far (none before the file exists)."""
        out = self.cwd / path
        return [json.loads(line) for line in out.read_text().splitlines()] \
            if out.exists() else []

    def wait(self, predicate: Callable[[], bool], what: str, path: str = "out.jsonl") -> None:
        """Until ``predicate()`` holds; fails (with stderr) if the process ends first, or
        (with the lines of ``path``) after :attr:`timeout` seconds."""
        deadline = time.monotonic() + self.timeout
        while not predicate():
            if self.process.poll() is not None:
                stderr = self.process.stderr.read() if self.process.stderr else b""
                raise AssertionError(f"meepo ended while waiting for {what}: {stderr!r}")
            assert time.monotonic() < deadline, (
                f"timed out waiting for {what}: {self.lines(path)}")
            time.sleep(0.2)
