"""meepo-es: replicate row events into Elasticsearch with external versions, dead letters
and a zero-downtime backfill (``meepo es backfill``)."""

from .sink import ElasticsearchSink

__all__ = ["ElasticsearchSink"]
