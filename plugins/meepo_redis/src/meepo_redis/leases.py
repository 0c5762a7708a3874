"""Partition ownership for the ``redis-stream`` source: one consumer per partition at a time.

Each worker registers itself in ``NAME:workers:GROUP`` (a sorted set scored by expiry) and
holds a lease key ``NAME:P:lease:GROUP`` (value: consumer name, ``PX lease_ms``) for every
partition it reads. A heartbeat thread, every ``lease_ms / 3``:

1. refreshes its registration and drops expired workers;
2. renews its leases with compare-and-expire (a lease another worker took is *lost*);
3. aims at a fair share ``ceil(partitions / live workers)``: acquires free partitions with
   ``SET NX PX`` while below it, and gives back extras while above it, but only once every
   entry it read from such a partition was acknowledged, so the next owner never replays
   entries that are still being applied here.

A newly acquired partition starts in state ``claim``: the reader takes over all its pending
entries (``XAUTOCLAIM`` from a dead or departed owner) before reading new ones, which keeps
per-key order across the handover.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import redis

from meepo_core import describe_error

from .redis_stream import StreamNames, id_key

log = logging.getLogger("meepo.redis.stream")

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

CLAIM, ACTIVE, RELEASING = "claim", "active", "releasing"


@dataclass
class Ownership:
    """What this worker owns and still has to acknowledge (guarded by ``lock``)."""

    states: dict[int, str] = field(default_factory=dict)
    unacked: dict[int, list[str]] = field(default_factory=dict)
    reading: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class PartitionLeases:
    """Acquires, renews and gives back partition leases in a background thread."""

    def __init__(self, client: redis.Redis, names: StreamNames, group: str, consumer: str,
                 partitions: int, lease_ms: int) -> None:
        self.client = client
        self.names = names
        self.group = group
        self.consumer = consumer
        self.partitions = partitions
        self.lease_ms = lease_ms
        self.owned = Ownership()
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_renewal = time.monotonic()
        # Start probing at a consumer-specific offset so workers spread out quickly.
        self._offset = zlib.crc32(consumer.encode()) % partitions

    def start(self) -> None:
        self.heartbeat()
        self._thread = threading.Thread(target=self._run, name="meepo-stream-leases",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and give back every lease (pending entries stay in the group
        for the next owner to claim)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.owned.lock:
            owned = list(self.owned.states)
            self.owned.states.clear()
        try:
            pipe = self.client.pipeline(transaction=False)
            for index in owned:
                self._release(keys=[self.names.lease(index, self.group)],
                              args=[self.consumer], client=pipe)
            pipe.zrem(self.names.workers(self.group), self.consumer)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not release stream leases (they expire in %d ms): %s",
                        self.lease_ms, describe_error(exc))

    def _run(self) -> None:
        interval = self.lease_ms / 3000
        while not self._stop.wait(interval):
            try:
                self.heartbeat()
            except Exception as exc:  # keep the heartbeat alive through outages
                log.warning("stream lease heartbeat failed: %s", describe_error(exc))
                if time.monotonic() - self._last_renewal > self.lease_ms / 1000:
                    self._drop_all("leases expired while Redis was unreachable")

    def heartbeat(self) -> None:
        """One round of register, renew, rebalance. Raises redis errors."""
        now_ms = int(time.time() * 1000)
        workers = self.names.workers(self.group)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(workers, {self.consumer: now_ms + self.lease_ms})
        pipe.zremrangebyscore(workers, "-inf", now_ms)
        pipe.zcard(workers)
        with self.owned.lock:
            held = sorted(self.owned.states)
        for index in held:
            self._renew(keys=[self.names.lease(index, self.group)],
                        args=[self.consumer, self.lease_ms], client=pipe)
        replies: list[Any] = pipe.execute()
        self._last_renewal = time.monotonic()
        live = max(1, int(replies[2]))
        lost = [index for index, ok in zip(held, replies[3:], strict=True) if not ok]
        if lost:
            self._drop(lost, "its lease was taken over (this worker stalled too long)")
        self._rebalance(math.ceil(self.partitions / live))

    def _rebalance(self, target: int) -> None:
        with self.owned.lock:
            owned = dict(self.owned.states)
        if len(owned) > target:
            extras = sorted(owned, key=self._rank, reverse=True)[: len(owned) - target]
            with self.owned.lock:
                for index in extras:
                    if self.owned.states.get(index) == ACTIVE:
                        self.owned.states[index] = RELEASING
        releasable: list[int] = []
        with self.owned.lock:
            for index, state in self.owned.states.items():
                if (state == RELEASING and index not in self.owned.reading
                        and not self.owned.unacked.get(index)):
                    releasable.append(index)
            for index in releasable:
                del self.owned.states[index]
        for index in releasable:
            self._release(keys=[self.names.lease(index, self.group)], args=[self.consumer])
            log.info("stream partition %s handed back for rebalancing", index)
        with self.owned.lock:
            have = len(self.owned.states)
        if have >= target:
            return
        for step in range(self.partitions):
            index = (self._offset + step) % self.partitions
            if index in owned:
                continue
            key = self.names.lease(index, self.group)
            if self.client.set(key, self.consumer, nx=True, px=self.lease_ms):
                with self.owned.lock:
                    self.owned.states[index] = CLAIM
                    have = len(self.owned.states)
                log.info("stream partition %s acquired by %s", index, self.consumer)
                if have >= target:
                    return

    def _rank(self, index: int) -> int:
        return (index - self._offset) % self.partitions

    def _drop(self, indexes: list[int], why: str) -> None:
        with self.owned.lock:
            for index in indexes:
                self.owned.states.pop(index, None)
        for index in indexes:
            log.warning("stream partition %s lost: %s", index, why)

    def _drop_all(self, why: str) -> None:
        with self.owned.lock:
            indexes = list(self.owned.states)
        if indexes:
            self._drop(indexes, why)

    # -- used by the reader and by acknowledge -------------------------------------------

    def begin_read(self) -> tuple[list[int], list[int]]:
        """Partitions to claim and partitions to read; marks them as being read."""
        with self.owned.lock:
            claim = sorted(i for i, s in self.owned.states.items() if s == CLAIM)
            active = sorted(i for i, s in self.owned.states.items() if s == ACTIVE)
            self.owned.reading.update(claim, active)
        return claim, active

    def end_read(self, delivered: dict[int, list[str]], claimed: list[int]) -> None:
        """Record entries handed to the runner (now awaiting acknowledgement)."""
        with self.owned.lock:
            for index, ids in delivered.items():
                self.owned.unacked.setdefault(index, []).extend(ids)
            for index in claimed:
                if self.owned.states.get(index) == CLAIM:
                    self.owned.states[index] = ACTIVE
            self.owned.reading.clear()

    def take_acked(self, index: int, upto: str) -> list[str]:
        """Ids of partition ``index`` at or before ``upto`` that await acknowledgement."""
        limit = id_key(upto)
        with self.owned.lock:
            return [i for i in self.owned.unacked.get(index, []) if id_key(i) <= limit]

    def forget(self, index: int, ids: list[str]) -> None:
        done = set(ids)
        with self.owned.lock:
            left = [i for i in self.owned.unacked.get(index, []) if i not in done]
            self.owned.unacked[index] = left

    def wait_idle(self, timeout: float) -> None:
        """Wait until the reader is not between a read and its bookkeeping."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.owned.lock:
                if not self.owned.reading:
                    return
            time.sleep(0.02)
