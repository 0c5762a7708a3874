"""Core test helpers: local test plugins live in tests/plugins_for_tests/."""

from __future__ import annotations

from pathlib import Path

import pytest

from meepo_core.builtin.memory import reset_channels

TEST_PLUGINS = Path(__file__).parent / "plugins_for_tests"


@pytest.fixture(autouse=True)
def _fresh_memory_channels() -> None:
    reset_channels()


@pytest.fixture
def plugin_env() -> dict[str, str]:
    """Environment that makes the test plugins importable by a meepo subprocess."""
    return {"PYTHONPATH": str(TEST_PLUGINS)}
