"""A rows event that cannot be decoded stops the pipeline with one line naming the table,
the binlog position and the column; the checkpoint stays before its transaction.

The damage is done for real, on the wire: a TCP proxy between meepo and MariaDB changes
the length byte of one VARCHAR value in the binlog stream. With ``binlog_checksum = CRC32``
(the default) the event then fails its checksum; without checksums the decoder finds the
value running past the event's end.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meepo_core.testing import run_meepo, write_config

MARKER = b"CORRUPTME"


class CorruptingProxy:
    """Forwards TCP both ways; in the server's replies, the byte before ``MARKER`` (the
    value's length) becomes 0x7f."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, corrupt: bool) -> None:
        held = b""  # the end of the last chunk, in case the marker straddles two
        with contextlib.suppress(OSError):
            while True:
                if held and not select.select([source], [], [], 0.05)[0]:
                    target.sendall(held)  # nothing follows: it was not a marker's start
                    held = b""
                    continue
                data = source.recv(65536)
                if not data:
                    break
                if not corrupt:
                    target.sendall(data)
                    continue
                data = held + data
                at = data.find(b"\x09" + MARKER)
                if at >= 0:
                    data = data[:at] + b"\x7f" + data[at + 1:]
                keep = len(MARKER)
                held, data = data[-keep:], data[:-keep]
                target.sendall(data)
            target.sendall(held)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def proxy(mysql_db: Any) -> Iterator[CorruptingProxy]:
    p = CorruptingProxy(mysql_db.server.host, mysql_db.server.port)
    yield p
    p.close()


@pytest.fixture
def checksum(mariadb: Any) -> Iterator[Any]:
    def set_checksum(value: str) -> None:
        mariadb.execute(f"SET GLOBAL binlog_checksum = '{value}'", database=None)

    yield set_checksum
    set_checksum("CRC32")


@pytest.mark.parametrize("algorithm", ["CRC32", "NONE"])
def test_an_undecodable_rows_event_stops_with_one_line_and_the_checkpoint_before_it(
    harness: Any, proxy: CorruptingProxy, checksum: Any, tmp_path: Path, algorithm: str
) -> None:
    checksum(algorithm)
    db = harness.db.name
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
    start = harness.end()
    harness.execute("INSERT INTO t VALUES (1, 'fine')")
    after_first = harness.end()
    harness.execute("INSERT INTO t VALUES (2, 'CORRUPTME'), (3, 'never')")
    bad_event = harness.server.execute(
        f"SHOW BINLOG EVENTS IN '{after_first.split(':')[0]}' FROM "
        f"{after_first.split(':')[1]}", database=None)
    event_pos = next(row[1] for row in bad_event if str(row[2]).startswith("Write_rows"))
    source = {"type": "mysql", "dsn": f"mysql://meepo:meepo@127.0.0.1:{proxy.port}",
              "tables": [f"{db}.t"], "start": start}
    checkpoint = tmp_path / "cp.json"
    write_config(tmp_path, {"bad": {"source": source, "sinks": [{"type": "jsonl",
                                                                 "path": "out.jsonl"}],
                                    "checkpoint": f"file:{checkpoint}"}})
    result = run_meepo("run", "bad", "--once", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("meepo: error:")]
    assert len(errors) == 1, result.stderr
    file = after_first.split(":")[0]
    if algorithm == "CRC32":
        assert errors[0] == (
            f"meepo: error: the binlog event at {file}:{event_pos} (type 23) fails its CRC32 "
            "check: it was damaged on the way; rerun to read it again")
    else:
        assert errors[0] == (
            f"meepo: error: {db}.t: cannot decode the binlog event at {file}:{event_pos}: "
            "row 0, column 'v': the value runs past the event's end; the checkpoint stays "
            "before its transaction. Report it with the output of mariadb-binlog "
            f"--start-position={event_pos} {file}, and compare with decoder = \"library\"")
    saved = json.loads(checkpoint.read_text())["position"]
    assert f"{saved['file']}:{saved['pos']}" == after_first  # after row 1, before the bad one
    delivered = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [event["pk"] for event in delivered if event["action"] != "schema"] == [1]
