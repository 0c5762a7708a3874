"""A checkpoint saved by another pipeline is refused before anything is written, and
``meepo adopt-checkpoint`` is the explicit way to take it over after a rename."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meepo_core.testing import run_meepo, write_config

SAMPLE = Path(__file__).parents[1] / "examples" / "sample-events.jsonl"


def pipeline(out: str) -> dict[str, Any]:
    return {
        "source": {"type": "jsonl", "path": str(SAMPLE)},
        "sinks": [{"type": "jsonl", "path": out}],
        "checkpoint": "file:shared/cp.json",
        "dead_letter": f"file:letters/{out}",
    }


def test_a_checkpoint_of_another_pipeline_is_refused_until_adopted(tmp_path: Path) -> None:
    write_config(tmp_path, {"orders": pipeline("old.jsonl")})
    first = run_meepo("run", "orders", "--once", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    checkpoint = tmp_path / "shared" / "cp.json"
    saved = checkpoint.read_bytes()
    assert json.loads(saved)["pipeline"] == "orders"
    assert len((tmp_path / "old.jsonl").read_text().splitlines()) == 13

    # the pipeline is renamed (or its config copied) with the same checkpoint key
    write_config(tmp_path, {"orders_v2": pipeline("new.jsonl")})
    expected = (
        f"meepo: error: tool.meepo.pipelines.orders_v2.checkpoint: checkpoint "
        f"file:{checkpoint} was saved by pipeline 'orders', not 'orders_v2'; give "
        "'orders_v2' a checkpoint of its own, or, if 'orders' was renamed to 'orders_v2', "
        "take it over with `meepo adopt-checkpoint orders_v2`")
    refused = run_meepo("run", "orders_v2", "--once", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip() == expected
    assert checkpoint.read_bytes() == saved
    assert not (tmp_path / "new.jsonl").exists() and not (tmp_path / "letters").exists()

    checked = run_meepo("check", "orders_v2", cwd=tmp_path)
    assert checked.returncode == 1
    assert "checkpoint: FAILED" in checked.stdout
    assert expected.replace("meepo: error: ", "meepo: checkpoint: ") in checked.stderr
    assert checkpoint.read_bytes() == saved

    adopted = run_meepo("adopt-checkpoint", "orders_v2", cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert adopted.stderr.strip() == (
        f"meepo: orders_v2: checkpoint file:{checkpoint} taken over from 'orders'; resumes "
        f"from {json.dumps(json.loads(saved)['position'])}")
    record = json.loads(checkpoint.read_text())
    assert record["pipeline"] == "orders_v2"
    assert record["position"] == json.loads(saved)["position"]

    resumed = run_meepo("run", "orders_v2", "--once", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "new.jsonl").read_text() == ""  # resumed where orders stopped
    again = run_meepo("adopt-checkpoint", "orders_v2", cwd=tmp_path)
    assert again.returncode == 0 and "already its own" in again.stderr


def test_adopting_when_there_is_no_checkpoint_is_refused(tmp_path: Path) -> None:
    write_config(tmp_path, {"orders": pipeline("out.jsonl")})
    result = run_meepo("adopt-checkpoint", "orders", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "meepo: error: tool.meepo.pipelines.orders.checkpoint: "
        f"file:{tmp_path / 'shared' / 'cp.json'} holds no checkpoint to adopt")
    assert not (tmp_path / "shared").exists()
