"""meepo-es: replicate row events into Elasticsearch with external versions, dead letters
and a zero-downtime backfill (``meepo es backfill``)."""

from typing import Any

__all__ = ["ElasticsearchSink"]


def __getattr__(name: str) -> Any:
    # Lazy, so that loading the plugin does not import the elasticsearch client.
    if name == "ElasticsearchSink":
        from .elasticsearch_sink import ElasticsearchSink

        return ElasticsearchSink
    raise AttributeError(name)
