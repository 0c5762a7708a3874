"""``redis://`` checkpoint and dead-letter stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from meepo_redis.stores import RedisCheckpointStore, RedisDeadLetterStore

from meepo_core.checkpoints import Checkpoint
from meepo_core.errors import CheckpointError
from meepo_core.plugins import load_registry
from meepo_core.serialization import event_from_dict, event_to_json
from meepo_core.testing import run_meepo, write_config

from .conftest import user_event


def test_checkpoint_round_trip_and_custom_key(redis_db: str, client: redis.Redis) -> None:
    store = RedisCheckpointStore.from_url(redis_db, "orders")
    assert store.load() is None
    store.save(Checkpoint({"file": "bin.000003", "pos": 1234}))
    assert store.load() == Checkpoint({"file": "bin.000003", "pos": 1234})
    record = json.loads(client.get("meepo:checkpoint:orders") or "")
    assert record["pipeline"] == "orders" and "saved_at" in record
    custom = RedisCheckpointStore.from_url(redis_db + "?key=cp:{pipeline}", "orders")
    custom.save(Checkpoint(7, {"jobs": []}))
    assert client.get("cp:orders") is not None
    assert custom.load() == Checkpoint(7, {"jobs": []})
    store.close()
    custom.close()


def test_snapshot_requests_wait_in_the_store_until_removed(redis_db: str) -> None:
    store = RedisCheckpointStore.from_url(redis_db, "orders")
    store.add_request({"id": "2", "tables": ["s.b"]})
    store.add_request({"id": "1", "tables": ["s.a"]})
    assert [r["id"] for r in store.requests()] == ["1", "2"]
    store.remove_requests(["1"])
    assert store.requests() == [{"id": "2", "tables": ["s.b"]}]
    store.close()


def test_corrupt_and_unreachable_checkpoints_are_one_line_errors(
    redis_db: str, client: redis.Redis
) -> None:
    client.set("meepo:checkpoint:x", "not json")
    with pytest.raises(CheckpointError, match=r"corrupt.*DEL the key"):
        RedisCheckpointStore.from_url(redis_db, "x").load()
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        RedisCheckpointStore.from_url("redis://127.0.0.1:1/0", "x").load()


def test_checkpoint_survives_a_new_process_and_resumes_there(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    log = tmp_path / "log.jsonl"
    first = [user_event("write", pk, None, {"id": pk}) for pk in (1, 2)]
    log.write_text("".join(event_to_json(e) + "\n" for e in first))
    write_config(tmp_path, {"p": {
        "source": {"type": "jsonl", "path": "log.jsonl"},
        "sinks": [{"type": "jsonl", "path": "out.jsonl"}],
        "checkpoint": redis_db,
    }})
    done = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    saved = json.loads(client.get("meepo:checkpoint:p") or "")["position"]
    assert saved == {"offset": log.stat().st_size}
    # another process (another machine, as far as Redis can tell) reads it back
    code = ("from meepo_redis.stores import RedisCheckpointStore as S; import json, sys; "
            f"print(json.dumps(S.from_url({redis_db!r}, 'p').load().position))")
    reader = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert json.loads(reader.stdout) == saved
    with log.open("a") as handle:
        handle.write(event_to_json(user_event("write", 3, None, {"id": 3})) + "\n")
    (tmp_path / "out.jsonl").unlink()
    again = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    resumed = [json.loads(line)["pk"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert resumed == [3]
    check = run_meepo("check", "p", cwd=tmp_path)
    assert "checkpoint: ok" in check.stdout and "meepo:checkpoint:p" in check.stdout


def test_bad_checkpoint_url_is_a_config_error(tmp_path: Path) -> None:
    write_config(tmp_path, {"p": {
        "source": {"type": "jsonl", "path": "log.jsonl"},
        "sinks": [{"type": "print"}],
        "checkpoint": "redis://host:notaport/0",
    }})
    done = run_meepo("check", "p", cwd=tmp_path)
    assert done.returncode == 2
    assert "tool.meepo.pipelines.p.checkpoint:" in done.stderr


def test_registered_for_redis_schemes() -> None:
    registry = load_registry()
    for scheme in ("redis", "rediss", "unix"):
        assert registry.lookup("checkpoint store", scheme, "k") is not None
        assert registry.lookup("dead-letter store", scheme, "k") is not None


def test_dead_letters_are_pushed_on_sync_as_core_records(
    redis_db: str, client: redis.Redis
) -> None:
    store = RedisDeadLetterStore.from_url(redis_db, "orders")
    event = user_event("update", 5, {"id": 5}, {"id": 5, "email": "x"})
    store.record(event, "sinks[1] elasticsearch", "mapping error: email")
    store.record(user_event("delete", 6, {"id": 6}, None), "sinks[1] elasticsearch", "gone")
    assert client.llen("meepo:dead:orders") == 0  # buffered until sync (before checkpoints)
    store.sync()
    letters = [json.loads(x) for x in client.lrange("meepo:dead:orders", 0, -1)]
    assert [x["error"] for x in letters] == ["mapping error: email", "gone"]
    assert letters[0]["sink"] == "sinks[1] elasticsearch"
    assert event_from_dict(letters[0]["event"]) == event
    store.record(event, "s", "again")
    store.close()  # close syncs
    assert client.llen("meepo:dead:orders") == 3
    assert "meepo:dead:orders" in store.description


def test_dead_letter_store_configured_in_a_pipeline(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "log.jsonl").write_text(event_to_json(user_event("write", 1, None, {"id": 1}))
                                        + "\n")
    write_config(tmp_path, {"p": {
        "source": {"type": "jsonl", "path": "log.jsonl"},
        "sinks": [{"type": "print"}],
        "checkpoint": "none",
        "dead_letter": redis_db + "?key=dl:{pipeline}",
    }})
    done = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert client.llen("dl:p") == 0  # nothing failed, nothing recorded
    write_config(tmp_path, {"p": {
        "source": {"type": "jsonl", "path": "log.jsonl"},
        "sinks": [{"type": "print"}],
        "dead_letter": "redis://:x@h:port/0",
    }})
    failed = run_meepo("check", "p", cwd=tmp_path)
    assert failed.returncode == 2 and "tool.meepo.pipelines.p.dead_letter:" in failed.stderr

