"""Snapshots: copying tables' current rows into the sinks while the change stream keeps
flowing. One module per job:

- :mod:`~meepo_core.snapshots.jobs`: the tables a source can snapshot and the jobs with
  their progress, as the checkpoint keeps them;
- :mod:`~meepo_core.snapshots.windows`: the DBLog algorithm (the chunks, their watermark
  windows, why no change is lost);
- :mod:`~meepo_core.snapshots.intake`: a run's snapshots (the initial one, tables asked
  for, requests taken while running) and :func:`request_snapshot`;
- :mod:`~meepo_core.snapshots.progress`: a job's progress line and the terminal bar;
- :mod:`~meepo_core.snapshots.keyset`: the SQL conditions of a chunk, for sources.
"""

from .intake import SnapshotIntake, request_snapshot
from .jobs import SnapshotJob, SnapshotTable, is_initial, new_request_id
from .keyset import keyset_filter
from .windows import SnapshotCoordinator

__all__ = [
    "SnapshotCoordinator",
    "SnapshotIntake",
    "SnapshotJob",
    "SnapshotTable",
    "is_initial",
    "keyset_filter",
    "new_request_id",
    "request_snapshot",
]
