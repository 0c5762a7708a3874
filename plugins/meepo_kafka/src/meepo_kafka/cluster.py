"""What ``meepo check`` and start-up ask the cluster: is it reachable, do the topics exist,
is topic auto-creation on, and is this client authorized."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from .compat import AclOperation, ClusterMetadata, ConfigResource
from .config import CONNECT_TIMEOUT, admin_config, describe

#: Errors that say this client lacks a permission.
AUTHORIZATION_ERRORS = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
    KafkaError.SASL_AUTHENTICATION_FAILED: "login",
}


class Unreachable(Exception):
    """The cluster did not answer; the message is one line naming the key and the fix."""


def fetch_metadata(client: Any, bootstrap: str, key: str) -> ClusterMetadata:
    """The cluster's metadata through ``client`` (producer, consumer or admin), or
    :class:`Unreachable`."""
    try:
        metadata: ClusterMetadata = client.list_topics(timeout=CONNECT_TIMEOUT)
    except KafkaException as exc:
        raise Unreachable(
            f"{key}: cannot reach Kafka at {bootstrap} within {CONNECT_TIMEOUT:.0f}s "
            f"({describe(exc)}); check the addresses, the network and the config's "
            "security settings"
        ) from exc
    return metadata


def admin_and_metadata(bootstrap: str, config: Mapping[str, Any] | None,
                       key: str) -> tuple[AdminClient, ClusterMetadata]:
    """An admin client with the connection settings of ``config``, and the cluster's
    metadata; :class:`Unreachable` names ``key`` when the cluster does not answer."""
    admin = AdminClient(admin_config(bootstrap, config))
    return admin, fetch_metadata(admin, bootstrap, key)


def auto_create(admin: AdminClient, metadata: ClusterMetadata) -> str:
    """The broker's ``auto.create.topics.enable`` (``"true"``/``"false"``), or why it could
    not be read."""
    broker = metadata.controller_id if metadata.controller_id >= 0 else min(metadata.brokers)
    resource = ConfigResource(ConfigResource.Type.BROKER, str(broker))
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=CONNECT_TIMEOUT)
    except KafkaException as exc:
        return f"unknown ({describe(exc)})"
    entry = configs.get("auto.create.topics.enable")
    return str(entry.value).lower() if entry is not None else "unknown (not reported)"


def topic_problems(admin: AdminClient, names: Iterable[str], metadata: ClusterMetadata,
                   key: str, need: AclOperation, *, missing_is_problem: bool) -> list[str]:
    """One line per topic of ``names`` that does not exist (always, when
    ``missing_is_problem``; else only when auto-creation is off) or that this client may
    not use with operation ``need`` (READ for the source, WRITE for the sink)."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    problems: list[str] = []
    futures = admin.describe_topics(TopicCollection(wanted), include_authorized_operations=True)
    setting: str | None = None
    for name in wanted:
        try:
            found = futures[name].result(timeout=CONNECT_TIMEOUT)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            code = error.code() if isinstance(error, KafkaError) else None
            if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                setting = setting or auto_create(admin, metadata)
                if missing_is_problem or setting != "true":
                    problems.append(_missing(key, name, setting))
            elif code in AUTHORIZATION_ERRORS:
                problems.append(f"{key}: not authorized to use topic {name!r} ({describe(exc)});"
                                f" grant this client {need.name} on it")
            else:
                problems.append(f"{key}: cannot describe topic {name!r}: {describe(exc)}")
            continue
        allowed = found.authorized_operations
        if allowed is not None and need not in allowed and AclOperation.ALL not in allowed:
            problems.append(f"{key}: not authorized to {need.name} topic {name!r}; grant "
                            f"this client {need.name} on it")
    return problems


def _missing(key: str, name: str, setting: str) -> str:
    if setting == "true":
        how = ("the broker's auto.create.topics.enable is true: it is created with the "
               "broker's default partition count when first written")
    elif setting == "false":
        how = ("the broker's auto.create.topics.enable is false: create it "
               "(kafka-topics.sh --create --topic NAME --partitions N)")
    else:
        how = f"the broker's auto.create.topics.enable is {setting}"
    return f"{key}: topic {name!r} does not exist; {how}"


def group_problems(admin: AdminClient, group: str, key: str) -> list[str]:
    """One line when this client may not use consumer group ``group``."""
    try:
        found = admin.describe_consumer_groups([group])[group].result(timeout=CONNECT_TIMEOUT)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() in AUTHORIZATION_ERRORS:
            return [f"{key}: not authorized to use consumer group {group!r} ({describe(exc)});"
                    " grant this client READ on the group"]
        return [f"{key}: cannot describe consumer group {group!r}: {describe(exc)}"]
    error = getattr(found, "error", None)
    if isinstance(error, KafkaError) and error.code() in AUTHORIZATION_ERRORS:
        return [f"{key}: not authorized to use consumer group {group!r}; grant this client "
                "READ on the group"]
    return []


def is_authorization(error: KafkaError) -> bool:
    return error.code() in AUTHORIZATION_ERRORS
