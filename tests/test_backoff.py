"""The one capped exponential backoff every retry waits by."""

from __future__ import annotations

import pytest

from meepo_core import backoff_delay


def test_doubles_from_the_first_delay_up_to_the_cap() -> None:
    assert [backoff_delay(n, 0.5, 30.0) for n in range(1, 10)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_any_number_of_failures_stays_at_the_cap() -> None:
    # a supervisor may restart a pipeline forever: no float overflow after 1,024 failures
    assert backoff_delay(5_000, 1.0, 300.0) == 300.0


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="attempt counts from 1, not 0"):
        backoff_delay(0, 1.0, 2.0)
