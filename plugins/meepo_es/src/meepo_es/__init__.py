"""meepo-es: replicate row events into Elasticsearch with external versions, dead letters
and a zero-downtime backfill (``meepo es backfill``)."""

from meepo_core import lazy_exports

# Imported on first use, so that loading the plugin does not import the elasticsearch client.
_HOMES = {
    "ElasticsearchSink": "elasticsearch_sink",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
