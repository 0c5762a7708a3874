"""meepo for SQLAlchemy 2: a session source (``install``), a transactional outbox with its
``sqlalchemy-outbox`` relay source, and the ``sql`` replica sink."""

from importlib import import_module
from typing import Any

# Public names and their modules, imported on first use so that loading the plugin (as
# every ``meepo`` command does) does not import SQLAlchemy.
_EXPORTS = {
    "DEFAULT_NAME": "outbox",
    "BulkCaptureError": "bulk",
    "Installation": "session_capture",
    "OutboxTables": "outbox",
    "create_outbox": "outbox",
    "install": "session_capture",
    "uninstall": "session_capture",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
