"""What a ``kafka`` source worker says while it waits to join its consumer group: without
it, a worker held back by a rebalance (a member that died without leaving, one busy in its
revoke) shows only ``events/s=0.0``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from .config import admin_config, describe

log = logging.getLogger("meepo.kafka")

#: Seconds without a partition assignment before a worker says it waits, then between
#: repeats. A join normally takes well under this (one rebalance of live members).
NOTICE_AFTER = 5.0
NOTICE_EVERY = 15.0
#: Seconds one look at the group may take (the consumer does not poll meanwhile).
DESCRIBE_TIMEOUT = 2.0

_STATES = {
    ConsumerGroupState.COMPLETING_REBALANCING:
        "the group is completing a rebalance: its leader is assigning the partitions",
    ConsumerGroupState.EMPTY: "the group has no members yet: the coordinator has not "
                              "answered this worker's join",
    ConsumerGroupState.DEAD: "the group is being removed by its coordinator",
}


class JoinNotice:
    """Logs, while a worker has no assignment after :data:`NOTICE_AFTER` seconds, that it
    waits to join group ``group`` and why, from the group's state as the cluster describes
    it. ``member_id`` returns this worker's member id (to leave it out of the members)."""

    def __init__(self, label: str, group: str, bootstrap: str,
                 config: Mapping[str, Any] | None, member_id: Callable[[], str | None]) -> None:
        self.label = label
        self.group = group
        self.bootstrap = bootstrap
        self.config = config
        self.member_id = member_id
        self._admin: AdminClient | None = None
        self._since: float | None = time.monotonic()
        self._told = 0.0

    def joined(self) -> None:
        """The group assigned partitions (maybe none): the wait is over."""
        self._since = None

    def left(self) -> None:
        """The partitions were revoked or lost: the worker waits to join again."""
        if self._since is None:
            self._since = time.monotonic()
            self._told = 0.0

    def tick(self) -> None:
        """Log the notice when it is due; cheap otherwise."""
        since = self._since
        now = time.monotonic()
        if since is None or now - since < NOTICE_AFTER or now - self._told < NOTICE_EVERY:
            return
        self._told = now
        log.warning("%s: waiting %.0fs to join consumer group %r: %s", self.label, now - since,
                    self.group, self.reason())

    def reason(self) -> str:
        """Why the group has not let this worker in, as far as the cluster tells."""
        try:
            if self._admin is None:
                self._admin = AdminClient(admin_config(self.bootstrap, self.config))
            found = self._admin.describe_consumer_groups([self.group])[self.group].result(
                timeout=DESCRIBE_TIMEOUT)
        except KafkaException as exc:
            return f"the group could not be described ({describe(exc)})"
        own = self.member_id()
        others = [m for m in found.members if m.member_id != own]
        if found.state == ConsumerGroupState.PREPARING_REBALANCING:
            who = ", ".join(f"{m.client_id} on {m.host.lstrip('/')}"
                            + (f" (group.instance.id {m.group_instance_id})"
                               if m.group_instance_id else "")
                            for m in others) or "members that have not rejoined yet"
            return (f"the group is rebalancing and waits for its members to rejoin: {who}. "
                    "A member that stopped without leaving the group (killed) is waited for "
                    "until its session.timeout.ms expires, one busy in its revoke up to its "
                    "max.poll.interval.ms; give each worker its own static "
                    'config."group.instance.id" so that a restarted worker takes its place '
                    "at once")
        if found.state == ConsumerGroupState.STABLE:
            return (f"the group is stable with {len(others)} other member(s); the coordinator "
                    "has not started the rebalance that lets this worker in")
        return _STATES.get(found.state, f"the group's state is {found.state}")
