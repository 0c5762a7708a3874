"""CLI output contracts: JSON logs, --debug tracebacks, runtime errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

from meepo_core.testing import run_meepo, write_config

SAMPLE = Path(__file__).parents[1] / "examples" / "sample-events.jsonl"


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {
            "p": {
                "source": {"type": "jsonl", "path": str(SAMPLE)},
                "sinks": [{"type": "null"}],
                "checkpoint": "none",
            }
        },
    )
    result = run_meepo("--log-format", "json", "run", "p", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {"ts", "level", "logger", "message"} <= set(records[0])
    assert any("events=13" in r["message"] for r in records)


def test_runtime_error_is_one_line_and_debug_adds_the_traceback(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {"p": {"source": {"type": "jsonl", "path": "nope.jsonl"}, "sinks": [{"type": "null"}]}},
    )
    plain = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines()[-1].startswith("meepo: error: cannot open jsonl log")
    assert "Traceback" not in plain.stderr
    debug = run_meepo("--debug", "run", "p", "--once", cwd=tmp_path)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
