"""The launcher of one ``noida-db`` service, shared by the Elasticsearch- and Kafka-API
servers (:mod:`.elasticsearch`, :mod:`.kafka`)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .base import Service, ServiceError, find_binary

if TYPE_CHECKING:
    from collections.abc import Sequence


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def noida_executable() -> str:
    """The native ``noida-db`` binary inside the package if importable (so it is our direct
    child and gets reaped), else the ``noida-db`` script next to ``sys.executable`` or on PATH.
    """
    spec = importlib.util.find_spec("noida_db")
    for location in (spec.submodule_search_locations or []) if spec else []:
        native = Path(location) / "noida-db"
        if native.is_file() and os.access(native, os.X_OK):
            return str(native)
    try:
        return find_binary(["noida-db"], [Path(sys.executable).parent])
    except ServiceError as exc:
        raise ServiceError(f"{exc}; install it with `pip install noida-db`") from None


class NoidaServer(Service):
    """One ``noida-db`` service (``service``) in the foreground, on a private port.

    The whole process group is signalled on stop (the ``noida-db`` script is a Python wrapper
    that does not forward signals to its native child).  Data persists in ``base_dir/data``
    across ``restart()``.
    """

    service: ClassVar[str] = ""

    def __init__(
        self, base_dir: Path, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        super().__init__(base_dir, port, startup_timeout=startup_timeout)
        self.datadir = self.base_dir / "data"

    def command(self) -> Sequence[str]:
        return [
            noida_executable(), "start", "--only", self.service,
            f"--{self.service}-port", str(self.port), "--host", self.host,
            "--data-dir", str(self.datadir),
        ]

    def is_ready(self) -> bool:
        # noida-db writes its pid to the data dir's control file: proves *our* server answers.
        control = json.loads((self.datadir / "noida.control.json").read_text())
        if self.pid not in (control.get("pid"), _parent_pid(int(control.get("pid", 0)))):
            return False
        return self.answers()

    def answers(self) -> bool:
        """True when the service answers one real request of its protocol."""
        raise NotImplementedError
