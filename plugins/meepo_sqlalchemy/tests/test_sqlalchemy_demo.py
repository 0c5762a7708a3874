"""The README's demo: examples/demo, run exactly as the README says, on a copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo"
COMMAND = ("python examples/demo/make_changes.py && "
           "meepo --config examples/demo/meepo.toml run demo --once")


def test_readme_demo_prints_the_original_example(tmp_path: Path) -> None:
    shutil.copytree(DEMO, tmp_path / "examples" / "demo",
                    ignore=shutil.ignore_patterns("demo.db*", ".meepo"))
    bindir = Path(sys.executable).parent  # python and meepo of this environment first
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for _ in range(2):  # the demo can be rerun: each run starts from a fresh database
        done = subprocess.run(COMMAND, shell=True, cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            "test_write 1", "test_write 2", "test_write 3", "test_update 2", "test_delete 3"]
