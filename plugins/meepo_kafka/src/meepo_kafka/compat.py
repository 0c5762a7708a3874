"""Names of confluent-kafka that its stubs do not export (written for confluent-kafka 2.16).

``confluent_kafka.admin`` re-exports these from private modules without an ``__all__``, so
``mypy --strict`` rejects importing them from there; they are imported from the modules that
define them, here only, so a move in a later release is fixed in one place.
"""

from confluent_kafka.admin._acl import AclOperation
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._metadata import ClusterMetadata
from confluent_kafka.cimpl import NewTopic

__all__ = ["AclOperation", "ClusterMetadata", "ConfigResource", "NewTopic"]
