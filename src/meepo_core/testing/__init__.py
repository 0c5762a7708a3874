"""Testing kit for meepo plugins: the contract suites every source, sink and transform passes
(``TransformContract`` is in :mod:`.transform_contract`, ``SnapshotSourceContract`` for
sources that snapshot in :mod:`.snapshot_contract`), and helpers
that run the real ``meepo`` CLI against a written config.

Needs only pytest (``pip install "meepo-core[test]"``). The fixtures that start real servers
(``mariadb``, ``redis_server``, ``postgres``, ``es_server``, ``kafka_server``...) are in the
separate ``meepo-testkit`` package.
"""

from .contract_rows import contract_row
from .contracts import SinkContract, SourceContract, contract_events, make_context
from .follower import StreamFollower
from .invoke import RunningMeepo, meepo_command, run_meepo, write_config
from .snapshot_contract import (
    SnapshotSourceContract,
    keep_writing,
    run_while_writing,
    table_state,
)
from .transform_contract import TransformContract

__all__ = [
    "RunningMeepo",
    "SinkContract",
    "SnapshotSourceContract",
    "SourceContract",
    "StreamFollower",
    "TransformContract",
    "contract_events",
    "contract_row",
    "keep_writing",
    "make_context",
    "meepo_command",
    "run_meepo",
    "run_while_writing",
    "table_state",
    "write_config",
]
