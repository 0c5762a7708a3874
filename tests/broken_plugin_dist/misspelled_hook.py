"""A plugin whose hook name matches no spec: check_pending() must report it."""

from typing import Any

from meepo_core import hookimpl


@hookimpl
def meepo_register_sink(register: Any) -> None:  # missing the final "s"
    register("never", object)
