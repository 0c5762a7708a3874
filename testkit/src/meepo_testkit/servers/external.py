"""Real clusters named by an environment variable, used instead of a launched server."""

from __future__ import annotations

import os
from typing import ClassVar, Self

from .base import ServiceError


class ExternalService:
    """A real server named by an environment variable; never started, stopped or restarted."""

    env: ClassVar[str] = ""

    def __init__(self, address: str) -> None:
        self.address = address

    @property
    def running(self) -> bool:
        """Always True: the cluster is assumed to be up."""
        return True

    def start(self) -> Self:
        """No-op."""
        return self

    def stop(self) -> None:
        """No-op."""

    def close(self) -> None:
        """No-op."""

    def restart(self) -> Self:
        """Always raises: an external cluster is not ours to restart."""
        raise ServiceError(f"cannot restart an external cluster ({self.env}={self.address})")

    @classmethod
    def from_env(cls) -> Self | None:
        """The cluster named by ``$env``, or None when it is unset."""
        address = os.environ.get(cls.env, "").strip()
        return cls(address) if address else None
