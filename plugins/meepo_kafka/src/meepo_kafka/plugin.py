"""meepo-kafka registrations: the ``kafka`` sink and source (imported on first use, so
pipelines without Kafka never load librdkafka)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meepo_core import hookimpl


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("kafka", "meepo_kafka.kafka_sink:KafkaSink")


@hookimpl
def meepo_register_sources(register: Callable[[str, Any], None]) -> None:
    register("kafka", "meepo_kafka.kafka_source:KafkaSource")
