"""meepo for SQLAlchemy 2: a session source (``install``), a transactional outbox with its
``sqlalchemy-outbox`` relay source, and the ``sql`` replica sink."""

from meepo_core import lazy_exports

# Public names and their modules, imported on first use so that loading the plugin (as
# every ``meepo`` command does) does not import SQLAlchemy.
_EXPORTS = {
    "DEFAULT_NAME": "outbox",
    "BulkCaptureError": "bulk",
    "Installation": "session_capture",
    "OutboxMissing": "outbox",
    "OutboxTables": "outbox",
    "create_outbox": "outbox",
    "install": "session_capture",
    "uninstall": "session_capture",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
