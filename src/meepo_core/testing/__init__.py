"""Testing kit for meepo and its plugins: contract suites, real-service fixtures, helpers.

The pytest fixtures (``mariadb``, ``redis_server``, ``postgres``, ``es_server``,
``external_mysql``, ``mysql_db``, ``redis_db``) are registered automatically through the
``pytest11`` entry point when meepo-core is installed.
"""

from .cli import run_meepo, write_config
from .contracts import SinkContract, SourceContract, contract_events, make_context

__all__ = [
    "SinkContract",
    "SourceContract",
    "contract_events",
    "make_context",
    "run_meepo",
    "write_config",
]
