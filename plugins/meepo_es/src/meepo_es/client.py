"""Building the official ``elasticsearch`` client (8.x or 9.x) from the sink's settings."""

from __future__ import annotations

from typing import Any

from elasticsearch import Elasticsearch

from .config import ClientSettings


def make_client(settings: ClientSettings) -> Elasticsearch:
    """A client with the client's own retries off: retries follow the pipeline's policy
    (the delivery engine calls ``apply`` again, see :mod:`meepo_es.bulk`)."""
    kwargs: dict[str, Any] = {
        "request_timeout": settings.request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": settings.verify_certs,
    }
    if settings.api_key is not None:
        kwargs["api_key"] = settings.api_key
    if settings.username is not None and settings.password is not None:
        kwargs["basic_auth"] = (settings.username, settings.password)
    if settings.ca_certs is not None:
        kwargs["ca_certs"] = settings.ca_certs
    if settings.client_cert is not None:
        kwargs["client_cert"] = settings.client_cert
    if settings.client_key is not None:
        kwargs["client_key"] = settings.client_key
    if not settings.verify_certs:
        kwargs["ssl_show_warn"] = False
    return Elasticsearch(list(settings.hosts), **kwargs)
