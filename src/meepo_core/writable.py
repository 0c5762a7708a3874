"""Whether a file can be created or appended to, told without writing anything: what
``meepo check`` says about the files a run will write (a ``jsonl`` sink's log, dead
letters, checkpoints)."""

from __future__ import annotations

import os
from pathlib import Path


def why_not_writable(path: Path) -> str | None:
    """Why a run could not create (with its missing directories) or append to the file
    ``path``, or None when it could. Looks only: nothing is created. Permission bits are
    judged by :func:`os.access`, so a superuser is told only about wrong file types."""
    if path.is_dir():
        return f"{path} is a directory"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    ancestor = path.parent
    while not ancestor.exists() and not ancestor.is_symlink() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot create {path}: {ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot create {path}: {ancestor} is not writable"
    return None
