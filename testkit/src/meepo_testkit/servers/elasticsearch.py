"""The Elasticsearch-API server of ``noida-db``, and the real cluster that
``$MEEPO_TEST_ES_URL`` names instead."""

from __future__ import annotations

import urllib.request

from .external import ExternalService
from .noida_db import NoidaServer

ES_URL_ENV = "MEEPO_TEST_ES_URL"


class ElasticsearchServer(NoidaServer):
    """An Elasticsearch-REST-compatible server; ``url`` is ``http://127.0.0.1:PORT``."""

    name = "elasticsearch"
    service = "elasticsearch"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def answers(self) -> bool:
        with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
            return int(resp.status) == 200


class ExternalElasticsearch(ExternalService):
    """A real Elasticsearch cluster named by ``$MEEPO_TEST_ES_URL``."""

    env = ES_URL_ENV

    @property
    def url(self) -> str:
        return self.address.rstrip("/")


def external_elasticsearch() -> ExternalElasticsearch | None:
    """The cluster named by ``$MEEPO_TEST_ES_URL``, or None when unset."""
    return ExternalElasticsearch.from_env()
