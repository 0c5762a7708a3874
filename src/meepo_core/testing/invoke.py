"""Invoking the real ``meepo`` CLI in a subprocess from tests, against a written config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
