"""``meepo check`` finds the files a run could not write: a ``jsonl`` sink's path, the
dead-letter file and the checkpoint, under a regular file or a directory in the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from meepo_core.testing import run_meepo, write_config
from meepo_core.writable import why_not_writable

SAMPLE = Path(__file__).parents[1] / "examples" / "sample-events.jsonl"


def config(tmp_path: Path, **keys: object) -> None:
    write_config(tmp_path, {"p": {
        "source": {"type": "jsonl", "path": str(SAMPLE)},
        "sinks": [{"type": "jsonl", "path": "out/audit.jsonl"}],
        "checkpoint": "file:state/p.json",
        "dead_letter": "file:state/p.dead.jsonl",
        **keys,
    }})


@pytest.mark.parametrize(("keys", "expected"), [
    ({"sinks": [{"type": "jsonl", "path": "afile/audit.jsonl"}]},
     "meepo: sinks[0] jsonl: path: cannot create {d}/afile/audit.jsonl: {d}/afile is not a "
     "directory; change path"),
    ({"dead_letter": "file:afile/deeper/p.dead.jsonl"},
     "meepo: dead_letter: cannot create {d}/afile/deeper/p.dead.jsonl: {d}/afile is not a "
     "directory; change dead_letter"),
    ({"dead_letter": "file:adir"},
     "meepo: dead_letter: {d}/adir is a directory; change dead_letter"),
    ({"checkpoint": "file:afile/p.json"},
     "meepo: checkpoint: cannot create {d}/afile/p.json: {d}/afile is not a directory; "
     "change checkpoint"),
])
def test_check_reports_a_file_a_run_could_not_write(
    tmp_path: Path, keys: dict[str, object], expected: str
) -> None:
    (tmp_path / "afile").write_text("a regular file\n")
    (tmp_path / "adir").mkdir()
    config(tmp_path, **keys)
    result = run_meepo("check", "p", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == expected.format(d=tmp_path.resolve())
    assert "FAILED" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "pyproject.toml"]


def test_check_passes_when_every_file_can_be_created(tmp_path: Path) -> None:
    config(tmp_path)
    result = run_meepo("check", "p", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dead_letter: ok" in result.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "state").exists()


def test_a_run_names_the_jsonl_path_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    config(tmp_path, sinks=[{"type": "jsonl", "path": "afile/audit.jsonl"}])
    result = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"meepo: error: jsonl sink path: cannot create {tmp_path.resolve()}/afile/audit.jsonl: "
        f"{tmp_path.resolve()}/afile is not a directory; change path")


def test_why_not_writable_follows_missing_directories_up(tmp_path: Path) -> None:
    assert why_not_writable(tmp_path / "a" / "b" / "c.jsonl") is None
    (tmp_path / "f").write_text("")
    assert why_not_writable(tmp_path / "f") is None
    assert why_not_writable(tmp_path / "f" / "a" / "b") == (
        f"cannot create {tmp_path}/f/a/b: {tmp_path}/f is not a directory")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert why_not_writable(tmp_path / "dangling" / "x") == (
        f"cannot create {tmp_path}/dangling/x: {tmp_path}/dangling is not a directory")
