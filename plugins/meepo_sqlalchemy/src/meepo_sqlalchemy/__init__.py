"""meepo for SQLAlchemy 2: a session source (``install``), a transactional outbox with its
``sqlalchemy-outbox`` relay source, and the ``sql`` replica sink."""

from .bulk import BulkCaptureError
from .outbox import DEFAULT_NAME, OutboxTables, create_outbox
from .session_source import Installation, install, uninstall

__all__ = [
    "DEFAULT_NAME",
    "BulkCaptureError",
    "Installation",
    "OutboxTables",
    "create_outbox",
    "install",
    "uninstall",
]
