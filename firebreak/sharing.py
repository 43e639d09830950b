"""Sharing between Firebreak instances: a publisher's signed feed, and a partner that pulls it.

    publisher (A)                                   partner (B)
    bank shared ──► feed events ──► GET /v1/feed/{bank}?after=C&wait_s=W ──► open_batch (key,
                                    (long-poll: an incident confirmed on A      bank, cursor)
                                     reaches a waiting B within a second)       │
                                                                                ▼
    opinions ◄── POST /v1/feed/{bank}/opinions ◄──────────── apply each event with B's cursor
    (enough false positives disable the item)                 in one transaction: exactly once

B keeps the partner token in an environment variable named by the subscription, never in its
store.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from firebreak.errors import FirebreakError
from firebreak.exchange.evidence import load_or_create_signing_key, public_key_fingerprint
from firebreak.exchange.feed import Batch, BatchRefused, open_batch, public_key_pem, sign_batch
from firebreak.service import Firebreak
from firebreak.signals.registry import signal_type
from firebreak.store import NewItem, SignalValue
from firebreak.store.feed import FeedRefused, Subscription, Subscriptions

logger = logging.getLogger(__name__)
_POLL_S = 0.2
_MAX_RESPONSE = 256 * 1024 * 1024


class Publisher:
    """Serves this instance's shared banks as signed batches."""

    def __init__(self, fb: Firebreak) -> None:
        self.fb = fb
        self.key = load_or_create_signing_key(fb.settings.home / "keys" / "feed.pem")

    @property
    def public_key(self) -> str:
        return public_key_pem(self.key)

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.key.public_key())

    def batch(
        self,
        bank: str,
        after: int,
        limit: int,
        wait_s: float = 0.0,
        stop: threading.Event | None = None,
    ) -> dict[str, str]:
        """The signed batch of `bank`'s events after `after`; waits up to `wait_s` for the first
        when there are none yet (a long poll), so a partner hears of a change at once."""
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            events = self.fb.store.feed.events(bank, after, limit)
            if events or time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return sign_batch(self.key, bank, after, [e.to_json() for e in events])
            time.sleep(_POLL_S)


@dataclass(frozen=True)
class PullSummary:
    batches: int
    added: int
    removed: int
    opinions: int
    cursor: int


class Fetch:
    """One GET of a partner's feed (a callable, so tests can tamper with what comes back)."""

    def __call__(self, subscription: Subscription, after: int, wait_s: float) -> object:
        query = urllib.parse.urlencode({"after": after, "limit": 500, "wait_s": wait_s})
        bank = urllib.parse.quote(subscription.remote_bank, safe="")
        url = f"{subscription.url.rstrip('/')}/v1/feed/{bank}?{query}"
        return _request(subscription, url, None, timeout=wait_s + 30)


class Puller:
    """Pulls subscribed feeds into import banks, each event exactly once."""

    def __init__(
        self, fb: Firebreak, fetch: Callable[[Subscription, int, float], object] | None = None
    ):
        self.fb = fb
        self.fetch = fetch or Fetch()

    def subscribe(
        self,
        name: str,
        url: str,
        remote_bank: str,
        publisher_key: str,
        token_env: str,
        local_bank: str | None = None,
    ) -> Subscription:
        open_key = publisher_key.strip()
        from firebreak.exchange.feed import load_public_key

        load_public_key(open_key)  # refuse a bad key now, not at the first pull
        return self.fb.store.subscriptions.add(
            name,
            url,
            remote_bank,
            local_bank or remote_bank,
            open_key,
            token_env,
            self.fb.settings.actor,
        )

    def pull(self, name: str, wait_s: float = 0.0, max_batches: int = 1000) -> PullSummary:
        """Fetch and apply batches until the feed has nothing new (the first may long-poll)."""
        added = removed = opinions = batches = 0
        for _ in range(max_batches):
            sub = self.fb.store.subscriptions.get(name)
            envelope = self.fetch(sub, sub.last_cursor, wait_s if batches == 0 else 0.0)
            try:
                batch = open_batch(envelope, sub.publisher_key, sub.remote_bank, sub.last_cursor)
            except BatchRefused as exc:
                logger.warning("subscription %s: %s", name, exc.reason)
                raise
            batches += 1
            if not batch.events:
                break
            a, r, o = self._apply(sub, batch)
            added, removed, opinions = added + a, removed + r, opinions + o
        cursor = self.fb.store.subscriptions.get(name).last_cursor
        return PullSummary(batches, added, removed, opinions, cursor)

    def follow(self, name: str, stop: threading.Event, wait_s: float = 20.0) -> None:
        """Pull until `stop`, long-polling so that changes arrive within a second; a refused
        batch or a network failure is logged and retried with back-off."""
        backoff = 0.5
        while not stop.is_set():
            try:
                self.pull(name, wait_s=wait_s)
                backoff = 0.5
            except FirebreakError as exc:
                logger.warning("subscription %s: %s; retrying in %.1f s", name, exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def send_opinion(self, name: str, item: str, opinion: str, note: str = "") -> dict[str, Any]:
        """Tell the publisher what this instance thinks of an item pulled from it."""
        sub = self.fb.store.subscriptions.get(name)
        local = self.fb.store.item(sub.local_bank, item)
        origin = local.metadata.get("origin") if local.metadata else None
        if not isinstance(origin, dict) or origin.get("subscription") != name:
            raise FeedRefused(f"{item} was not pulled through {name}")
        bank = urllib.parse.quote(sub.remote_bank, safe="")
        url = f"{sub.url.rstrip('/')}/v1/feed/{bank}/opinions"
        body = {"item": str(origin["item"]), "opinion": opinion, "note": note}
        answer = _request(sub, url, body, timeout=30)
        if not isinstance(answer, dict):
            raise FeedRefused("the publisher's answer is not JSON")
        return answer

    def _apply(self, sub: Subscription, batch: Batch) -> tuple[int, int, int]:
        added = removed = opinions = 0
        actor = f"partner:{sub.name}"
        if sub.local_bank not in self.fb.store.bank_rules():
            self.fb.store.create_bank(sub.local_bank, "block", actor)
        for event in batch.events:
            cursor, kind, uid = int(event["cursor"]), str(event["kind"]), str(event["item"])
            payload = event.get("payload") or {}

            def done(
                session: Session, item_id: int | None, uid: str = uid, c: int = cursor
            ) -> None:
                Subscriptions.remember(session, sub.id, uid, item_id)
                Subscriptions.advance(session, sub.id, c)

            if kind == "add":
                new = _new_item(payload, batch.publisher, sub.name, uid)
                outcome = self.fb.store.add_item(sub.local_bank, new, actor, within=done)
                self.fb.apply_change(outcome.change)
                added += 1
            elif kind == "remove":
                item_id = self.fb.store.subscriptions.imported_item(sub.id, uid)
                if item_id is None:
                    self.fb.store.subscriptions.advance_only(sub.id, cursor)
                    continue
                local = self.fb.store.item_by_id(item_id)

                def forget(session: Session, uid: str = uid, c: int = cursor) -> None:
                    Subscriptions.remember(session, sub.id, uid, None)
                    Subscriptions.advance(session, sub.id, c)

                change = self.fb.store.remove_item(local.bank, local.name, actor, within=forget)
                self.fb.apply_change(change)
                removed += 1
            else:  # another partner's opinion, for the record
                self.fb.store.audit.append(
                    actor, "opinion.seen", f"bank:{sub.local_bank}", "", dict(payload)
                )
                self.fb.store.subscriptions.advance_only(sub.id, cursor)
                opinions += 1
        return added, removed, opinions


def _new_item(payload: Mapping[str, Any], publisher: str, subscription: str, uid: str) -> NewItem:
    """A pulled item as this instance banks it; every signal validated, unknown types kept."""
    try:
        values = []
        for entry in payload["signals"]:
            kind, value, quality, timestamp = entry
            try:
                checked = signal_type(str(kind)).validate(str(value))
            except (FirebreakError, ValueError):
                checked = str(value)  # a type we do not know (or format) is kept as it came
            values.append(SignalValue(str(kind), checked, quality, timestamp))
        metadata = dict(payload.get("metadata") or {})
        metadata["origin"] = {"publisher": publisher, "subscription": subscription, "item": uid}
        return NewItem(
            name=str(payload["name"])[:500],
            media_kind=str(payload.get("media_kind") or "hashes"),
            duration_s=float(payload.get("duration_s") or 0.0),
            signals=tuple(values),
            source_md5=payload.get("md5"),
            source_sha256=payload.get("sha256"),
            metadata=metadata,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BatchRefused(f"malformed item {uid}: {exc!r}") from None


def _request(sub: Subscription, url: str, body: object, timeout: float) -> object:
    token = os.environ.get(sub.token_env)
    if not token:
        raise FeedRefused(f"no partner token in ${sub.token_env}")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read(_MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        raise FeedRefused(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FeedRefused(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if len(raw) > _MAX_RESPONSE:
        raise FeedRefused(f"{url}: answer too large")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise FeedRefused(f"{url}: not JSON") from None
