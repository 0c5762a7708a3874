"""Index and alias management: creation with mappings/settings, versioned names, the
atomic alias swap used by the backfill."""

from __future__ import annotations

import re
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from meepo_core import SinkError

from .config import TableRule


def ensure_index(client: Elasticsearch, name: str, rule: TableRule) -> bool:
    """Create ``name`` with the rule's mappings and settings unless an index or alias of
    that name exists. Returns True when this call created it."""
    if client.indices.exists(index=name):
        return False
    return create_index(client, name, rule)


def create_index(client: Elasticsearch, name: str, rule: TableRule) -> bool:
    """Create ``name``; False if it already existed (a concurrent creator won)."""
    body: dict[str, Any] = {}
    if rule.mappings:
        body["mappings"] = rule.mappings
    if rule.settings:
        body["settings"] = rule.settings
    try:
        client.indices.create(index=name, **body)
    except ApiError as exc:
        if exc.error == "resource_already_exists_exception":
            return False
        raise SinkError(
            f"cannot create index {name!r}: HTTP {exc.meta.status} {exc.error}: {exc.message}; "
            "check the table's mappings/settings", retryable=exc.meta.status >= 500,
        ) from exc
    return True


def next_versioned_name(client: Elasticsearch, alias: str) -> str:
    """``ALIAS_vN`` with N one above the highest existing ``ALIAS_v*`` index."""
    existing = client.indices.get(index=f"{alias}_v*", allow_no_indices=True,
                                  expand_wildcards="all").body
    pattern = re.compile(rf"^{re.escape(alias)}_v(\d+)$")
    numbers = [int(m.group(1)) for name in existing if (m := pattern.match(name))]
    return f"{alias}_v{max(numbers, default=0) + 1}"


def swap_alias(client: Elasticsearch, alias: str, target: str) -> list[str]:
    """Point ``alias`` at ``target`` alone, in one atomic ``_aliases`` call.

    If ``alias`` is a concrete index (the sink created it before any backfill) it is
    removed in the same call (``remove_index``), so readers and writers never see a
    moment without ``alias``. Returns the indices the alias pointed at before."""
    actions: list[dict[str, Any]] = []
    previous: list[str] = []
    if client.indices.exists_alias(name=alias):
        previous = sorted(client.indices.get_alias(name=alias).body)
        actions += [{"remove": {"index": index, "alias": alias}} for index in previous
                    if index != target]
    elif client.indices.exists(index=alias):
        previous = [alias]
        actions.append({"remove_index": {"index": alias}})
    actions.append({"add": {"index": target, "alias": alias}})
    client.indices.update_aliases(actions=actions)
    return previous
