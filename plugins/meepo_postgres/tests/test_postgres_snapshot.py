"""Snapshots through the postgres source: the snapshot contract (copied rows equal what the
stream delivers for the same rows, for every type; chunks, ``initial_only``, writers during a
snapshot), a late stream loses nothing, and a chunk keeps JSON nested too deep as text."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meepo_core.testing import SnapshotSourceContract, run_meepo, write_config

from .test_postgres_types import EDGE_ROW, OUTSIDE_ROW, TYPES, comparable


class TestPostgresSnapshotContract(SnapshotSourceContract):
    @pytest.fixture(autouse=True)
    def _schema(self, harness: Any) -> None:
        self.harness = self.h = harness

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        with self.h.server.connect(autocommit=True) as conn:
            conn.execute(f"SET search_path = {self.h.schema}")
            yield conn

    def qualified(self, table: str) -> str:
        return f"{self.h.schema}.{table}"

    def fill_typed_table(self) -> tuple[str, Callable[[], None]]:
        self.h.execute(*TYPES)
        return "types", lambda: self.h.execute(EDGE_ROW, OUTSIDE_ROW)

    def comparable(self, value: Any) -> Any:
        return comparable(value)


def test_a_late_stream_never_loses_rows_and_never_blames_a_signal_table(
    harness: Any, tmp_path: Path
) -> None:
    """Every new connection to the server waits 1.5 s (a pausing proxy), so the stream
    fixes its start position late. The core asks ``snapshot_ready`` before each chunk and
    waits for it, so the first run copies every row, and nothing blames a signal table
    (this source has none). Before that wait, the first chunk's watermarks were written
    before the stream's start and never came back."""
    from meepo_testkit.proxy import TcpProxy

    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
                    "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20) g")
    with TcpProxy(harness.server.host, harness.server.port) as proxy:
        proxy.delay_connect = 1.5
        slow = harness.server.url.replace(f":{harness.server.port}/", f":{proxy.port}/")
        config = {"source": harness.options(dsn=slow), "snapshot": "initial",
                  "snapshot_chunk_size": 8,
                  "sinks": [{"type": "jsonl", "path": "out.jsonl"}]}
        write_config(tmp_path, {"late": config})
        first = run_meepo("run", "late", "--once", cwd=tmp_path, timeout=120)
    assert "signal table" not in first.stderr
    assert first.returncode == 0, first.stderr[-2000:]
    copied = {line["pk"] for line in map(json.loads,
                                         (tmp_path / "out.jsonl").read_text().splitlines())
              if line["action"] != "schema"}
    assert copied == set(range(1, 21))


def test_a_chunk_keeps_json_nested_too_deep_as_its_text(harness: Any, caplog: Any) -> None:
    """A snapshot chunk has no dead-letter store: a json value nested 5,000 levels is copied
    as its text, with a warning naming the table, column and key; the chunk goes on."""
    deep = "[" * 5000 + "]" * 5000
    harness.execute("CREATE TABLE docs (id INT PRIMARY KEY, doc JSON)",
                    "INSERT INTO docs VALUES (1, '[1]')",
                    f"INSERT INTO docs VALUES (2, '{deep}')", "INSERT INTO docs VALUES (3, '[3]')")
    source = harness.source()
    try:
        (table,) = source.snapshot_tables([f"{harness.schema}.docs"])
        with caplog.at_level("WARNING", logger="meepo.postgres"):
            copied = source.read_chunk(table, None, 10)
    finally:
        source.close()
    assert [(e.pk, (e.after or {})["doc"]) for e in copied] == [(1, [1]), (2, deep), (3, [3])]
    [warning] = [r.getMessage() for r in caplog.records if "copied as its text" in r.getMessage()]
    assert warning.startswith(f"snapshot of {harness.schema}.docs: column doc of the row ['2']: "
                              "JSON nested deeper than Python can decode")
