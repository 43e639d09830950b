"""Durable event queues between the upload path's stages, behind one small protocol.

    uploads ──► hasher workers ──► hashed ──► matcher workers ──► results
                 (group "hashers")             (group "matchers")

Each stream is read by a consumer group: every event goes to one consumer of the group, stays
pending until that consumer acknowledges it, and is handed to another consumer when it has been
pending longer than the visibility timeout (its consumer died, or hangs). Delivery is at least
once; the stages make it act once (see `firebreak.store.scale`). An event delivered more than
`max_deliveries` times (one that kills every worker that takes it) is moved to a dead-letter
stream instead of taking workers down forever.

Redis Streams, not NATS JetStream, is the implementation here: redis-py is synchronous like the
rest of Firebreak (nats-py is asyncio-only, so every worker would run an event loop beside
SQLAlchemy's blocking calls), and consumer groups with XAUTOCLAIM are exactly the
pending-then-claimed model above. Redis keeps streams in memory: run it with `appendonly yes`
(fsync every second) where a broker restart must not lose events. JetStream (durable pull
consumers, `ack_wait`, `max_deliver`, file storage) fits the same protocol, should a deployment
want a broker whose durability needs no configuration.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

import redis

from firebreak.errors import FirebreakError

UPLOADS = "uploads"
HASHED = "hashed"
RESULTS = "results"
DEAD = "dead"
WORKERS = "workers"
"""Workers announce themselves here (name, kind, how long they took to get ready)."""


class QueueError(FirebreakError):
    """A queue that cannot be reached or used as configured."""


@dataclass(frozen=True)
class Delivery:
    """One event handed to one consumer: acknowledge it once its effects are durable."""

    stream: str
    group: str
    message_id: str
    event: Mapping[str, Any]
    attempts: int
    """How many times the event has been delivered, this time included."""


class EventQueue(Protocol):
    """Named streams of JSON events, each read by consumer groups with at-least-once delivery."""

    def ensure_group(self, stream: str, group: str) -> None:
        """Create the group (reading from the stream's start) if it does not exist."""
        ...

    def publish(self, stream: str, event: Mapping[str, Any]) -> str:
        """Append an event; returns its message id."""
        ...

    def consume(
        self, stream: str, group: str, consumer: str, count: int, block_s: float
    ) -> list[Delivery]:
        """Up to `count` events for `consumer`: those other consumers left pending past the
        visibility timeout first, then new ones, waiting up to `block_s` when there are none."""
        ...

    def ack(self, delivery: Delivery) -> None: ...

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move an event that keeps failing to the dead-letter stream, and acknowledge it."""
        ...

    def read(
        self, stream: str, after: str = "0", count: int = 1000
    ) -> list[tuple[str, dict[str, Any]]]:
        """Events after message id `after`, without a group (tests, tools, audits)."""
        ...

    def trim(self, stream: str) -> int:
        """Drop the events every group of the stream has acknowledged; how many went."""
        ...

    def close(self) -> None: ...


class RedisStreamsQueue:
    """`EventQueue` on Redis Streams: stream `NAME` is the key `{prefix}:NAME`."""

    def __init__(
        self,
        url: str,
        prefix: str = "firebreak",
        visibility_timeout_s: float = 30.0,
        claim_every_s: float | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.prefix = prefix
        self.visibility_timeout_s = visibility_timeout_s
        # Looking for abandoned events costs a round trip: a few times per timeout is enough.
        self._claim_every_s = (
            claim_every_s if claim_every_s is not None else max(0.1, visibility_timeout_s / 4)
        )
        self._claimed_at: dict[tuple[str, str], float] = {}
        self._claim_cursor: dict[tuple[str, str], str] = {}
        self._redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout_s,
            # A blocking read waits up to its block time: the socket must wait longer.
            socket_timeout=timeout_s + 60.0,
            health_check_interval=30,
        )

    def key(self, stream: str) -> str:
        return f"{self.prefix}:{stream}"

    def ensure_group(self, stream: str, group: str) -> None:
        try:
            self._redis.xgroup_create(self.key(stream), group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise QueueError(f"cannot create group {group} on {stream}: {exc}") from exc

    def publish(self, stream: str, event: Mapping[str, Any]) -> str:
        body = json.dumps(dict(event), sort_keys=True, separators=(",", ":"), default=str)
        return str(self._redis.xadd(self.key(stream), {"event": body}))

    def consume(
        self, stream: str, group: str, consumer: str, count: int, block_s: float
    ) -> list[Delivery]:
        claimed = self._claim(stream, group, consumer, count)
        if claimed:
            return claimed
        answer: Any = self._redis.xreadgroup(
            group, consumer, {self.key(stream): ">"}, count=count, block=max(1, int(block_s * 1000))
        )
        deliveries = []
        for _key, messages in answer or []:
            for message_id, fields in messages:
                deliveries.append(Delivery(stream, group, message_id, _event(fields), 1))
        return deliveries

    def _claim(self, stream: str, group: str, consumer: str, count: int) -> list[Delivery]:
        """Events pending with any consumer for longer than the visibility timeout, now ours."""
        slot = (stream, group)
        now = time.monotonic()
        if now - self._claimed_at.get(slot, 0.0) < self._claim_every_s:
            return []
        self._claimed_at[slot] = now
        start = self._claim_cursor.get(slot, "0-0")
        answer = self._redis.xautoclaim(
            self.key(stream),
            group,
            consumer,
            min_idle_time=int(self.visibility_timeout_s * 1000),
            start_id=start,
            count=count,
        )
        next_start, messages = answer[0], answer[1]
        self._claim_cursor[slot] = next_start
        if next_start != "0-0":
            self._claimed_at[slot] = 0.0  # more to look at: look again on the next call
        # Events deleted from the stream while pending come back empty: nothing to deliver.
        messages = [(mid, fields) for mid, fields in messages if mid is not None and fields]
        if not messages:
            return []
        attempts = self._attempts(stream, group, [mid for mid, _ in messages])
        return [
            Delivery(stream, group, mid, _event(fields), attempts.get(mid, 1))
            for mid, fields in messages
        ]

    def _attempts(self, stream: str, group: str, ids: list[str]) -> dict[str, int]:
        """Each claimed event's delivery count (claims are rare: one pipelined call)."""
        pipe = self._redis.pipeline(transaction=False)
        for mid in ids:
            pipe.xpending_range(self.key(stream), group, min=mid, max=mid, count=1)
        found: dict[str, int] = {}
        for entries in pipe.execute():
            for entry in entries:
                found[str(entry["message_id"])] = int(entry["times_delivered"])
        return found

    def ack(self, delivery: Delivery) -> None:
        self._redis.xack(self.key(delivery.stream), delivery.group, delivery.message_id)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.publish(
            DEAD,
            {
                "stream": delivery.stream,
                "message_id": delivery.message_id,
                "attempts": delivery.attempts,
                "reason": reason,
                "event": dict(delivery.event),
            },
        )
        self.ack(delivery)

    def read(
        self, stream: str, after: str = "0", count: int = 1000
    ) -> list[tuple[str, dict[str, Any]]]:
        answer: Any = self._redis.xread({self.key(stream): after}, count=count)
        return [
            (mid, _event(fields)) for _key, messages in answer or [] for mid, fields in messages
        ]

    def trim(self, stream: str) -> int:
        """Streams only grow: drop the events that every group reading the stream has been
        handed and has acknowledged (those before each group's oldest pending event, or after
        its last delivered one when none is pending). A stream read without groups (results,
        read by whoever listens) is left alone."""
        key = self.key(stream)
        try:
            groups = self._redis.xinfo_groups(key)
        except redis.ResponseError:
            return 0  # no such stream
        bounds = []
        for group in groups:
            pending = self._redis.xpending(key, group["name"])
            if int(pending["pending"]):
                bounds.append(str(pending["min"]))
            else:
                ms, seq = _id_key(str(group["last-delivered-id"]))
                bounds.append(f"{ms}-{seq + 1}")
        if not bounds:
            return 0
        # Only ever too little is dropped: every bound grows while we look.
        return int(self._redis.xtrim(key, minid=min(bounds, key=_id_key), approximate=False))

    def pending(self, stream: str, group: str) -> int:
        """How many events the group has been handed and not yet acknowledged."""
        info = self._redis.xpending(self.key(stream), group)
        return int(info["pending"])

    def length(self, stream: str) -> int:
        return int(self._redis.xlen(self.key(stream)))

    def delete(self, *streams: str) -> None:
        """Remove streams and their groups (tests, resets)."""
        self._redis.delete(*(self.key(s) for s in streams))

    def close(self) -> None:
        self._redis.close()


def open_queue(
    url: str, prefix: str = "firebreak", visibility_timeout_s: float = 30.0
) -> RedisStreamsQueue:
    """The queue at `url`: `redis://` or `rediss://` (Redis Streams)."""
    scheme = urlparse(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        return RedisStreamsQueue(url, prefix, visibility_timeout_s)
    if scheme == "nats":
        raise QueueError(
            f"{url}: NATS JetStream is not built yet; use a redis:// queue (see firebreak.scale.queue)"
        )
    raise QueueError(f"{url}: unknown queue URL scheme {scheme!r} (redis:// is supported)")


def _event(fields: Mapping[str, str]) -> dict[str, Any]:
    try:
        event = json.loads(fields["event"])
    except (KeyError, ValueError):
        return {"_malformed": dict(fields)}
    return event if isinstance(event, dict) else {"_malformed": {"event": event}}


def _id_key(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


__all__ = [
    "DEAD",
    "HASHED",
    "RESULTS",
    "UPLOADS",
    "WORKERS",
    "Delivery",
    "EventQueue",
    "QueueError",
    "RedisStreamsQueue",
    "open_queue",
]
