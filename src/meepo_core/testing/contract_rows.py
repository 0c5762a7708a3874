"""The rows of the contract table, shared by the contract suites."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

#: The ``updated_at`` of every contract row, and the commit time of contract events.
CONTRACT_STAMP = datetime(2026, 1, 1, tzinfo=UTC)


def contract_row(pk: int, name: str) -> dict[str, Any]:
    """A row of the contract table: ``id``, ``name``, ``price`` (``Decimal("<pk>.50")``)
    and ``updated_at``."""
    return {"id": pk, "name": name, "price": Decimal(f"{pk}.50"), "updated_at": CONTRACT_STAMP}
