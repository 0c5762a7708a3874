"""Capped exponential backoff: the one formula every retry and reconnect in meepo waits by
(sink retries in :class:`~meepo_core.Delivery`, source reconnects, supervised restarts)."""

from __future__ import annotations

#: Doubling stops here: ``2.0 ** 64`` times any sensible first delay is past every cap,
#: and a float power of a larger exponent would overflow after enough failures.
_MOST_DOUBLINGS = 64


def backoff_delay(attempt: int, first: float, most: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first): ``first``,
    doubled for each attempt after it, never more than ``most``. Any ``attempt`` of 1 or
    more is fine, however many failures came before; below 1 is a ``ValueError``."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, not {attempt}")
    return min(first * 2.0 ** min(attempt - 1, _MOST_DOUBLINGS), most)
