"""The store's side of sharing: the feed a publisher serves, the subscriptions a partner pulls,
and the opinions partners send back.

    publisher: shared bank changes ──► feed_events (cursor only grows) ──► batches to partners
                partners' opinions ──► opinions ──► enough "false_positive" ──► item disabled
    partner:   batch ──► each event applied with the subscription's cursor in one transaction,
               so a restart resumes after the last event applied and nothing applies twice
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from firebreak.errors import FirebreakError
from firebreak.store.incidents import write_audit
from firebreak.store.models import (
    BankRow,
    FeedEventRow,
    ImportedItemRow,
    ItemRow,
    OpinionRow,
    SubscriptionRow,
    utcnow,
)

OPINIONS = ("false_positive", "confirmed")


_FEED_LOCK = 0x46454544  # "FEED"


def lock_feed(session: Session) -> None:
    """Hold the feed's write lock until this transaction ends, so that feed cursors are handed
    out in commit order: a partner reading after cursor X never misses an event that commits
    later with a smaller cursor. (SQLite has one writer at a time already.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FEED_LOCK})


class FeedRefused(FirebreakError):
    """A feed request or batch refused: an unknown bank or subscription, a bad opinion."""


@dataclass(frozen=True)
class FeedEvent:
    cursor: int
    kind: str
    item: str
    payload: dict[str, Any]

    def to_json(self) -> dict[str, object]:
        return {
            "cursor": self.cursor,
            "kind": self.kind,
            "item": self.item,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class Subscription:
    id: int
    name: str
    url: str
    remote_bank: str
    local_bank: str
    publisher_key: str
    token_env: str
    last_cursor: int
    last_pulled_at: datetime | None


class Feed:
    """The publisher's side."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def events(self, bank: str, after: int, limit: int) -> list[FeedEvent]:
        """The shared bank's events after `after`, oldest first."""
        with self._sessions() as session:
            row = session.scalar(select(BankRow).where(BankRow.name == bank))
            if row is None or not row.shared:
                raise FeedRefused(f"bank {bank} is not shared")
            rows = session.scalars(
                select(FeedEventRow)
                .where(FeedEventRow.bank == bank, FeedEventRow.cursor > after)
                .order_by(FeedEventRow.cursor)
                .limit(limit)
            ).all()
            return [FeedEvent(r.cursor, r.kind, r.item_uid, json.loads(r.payload)) for r in rows]

    def record_opinion(
        self,
        bank: str,
        item_uid: str,
        partner: str,
        opinion: str,
        note: str,
        disable_at: int,
    ) -> dict[str, object]:
        """Keep a partner's opinion on a shared item (its latest one counts) and publish it; when
        `disable_at` partners call it a false positive, the item stops matching until a person
        decides (its hashes stay)."""
        if opinion not in OPINIONS:
            raise FeedRefused(f"an opinion is one of {', '.join(OPINIONS)}")
        if not item_uid.isdigit():
            raise FeedRefused(f"no shared item {item_uid}")
        with self._sessions.begin() as session:
            item = session.get(ItemRow, int(item_uid))
            bank_row = session.scalar(select(BankRow).where(BankRow.name == bank))
            if item is None or bank_row is None or item.bank_id != bank_row.id:
                raise FeedRefused(f"no item {item_uid} in bank {bank}")
            if not bank_row.shared:
                raise FeedRefused(f"bank {bank} is not shared")
            kept = session.scalar(
                select(OpinionRow).where(
                    OpinionRow.item_id == item.id, OpinionRow.partner == partner
                )
            )
            if kept is None:
                session.add(
                    OpinionRow(item_id=item.id, partner=partner, opinion=opinion, note=note)
                )
            else:
                kept.opinion, kept.note, kept.at = opinion, note, utcnow()
            session.flush()
            false_positives = int(
                session.scalar(
                    select(func.count(OpinionRow.id)).where(
                        OpinionRow.item_id == item.id, OpinionRow.opinion == "false_positive"
                    )
                )
                or 0
            )
            disabled = False
            if item.enabled and false_positives >= disable_at:
                item.enabled = False
                disabled = True
                write_audit(
                    session,
                    "rule:partner-opinions",
                    "item.disable",
                    f"bank:{bank}",
                    f"item {item.name}: {false_positives} partners called it a false positive",
                )
            write_audit(
                session,
                f"partner:{partner}",
                f"opinion.{opinion}",
                f"bank:{bank}",
                note,
                {"item": item.name, "item_id": item.id},
            )
            lock_feed(session)
            session.add(
                FeedEventRow(
                    bank=bank,
                    kind="opinion",
                    item_uid=item_uid,
                    payload=json.dumps({"partner": partner, "opinion": opinion, "note": note}),
                )
            )
            return {
                "item": item.name,
                "false_positives": false_positives,
                "disabled": disabled or not item.enabled,
            }

    def opinions(self, item_id: int) -> list[dict[str, object]]:
        with self._sessions() as session:
            rows = session.scalars(
                select(OpinionRow).where(OpinionRow.item_id == item_id).order_by(OpinionRow.id)
            )
            return [
                {"partner": r.partner, "opinion": r.opinion, "note": r.note, "at": r.at.isoformat()}
                for r in rows
            ]


class Subscriptions:
    """The partner's side: which feeds it pulls, and how far it has applied each."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(
        self,
        name: str,
        url: str,
        remote_bank: str,
        local_bank: str,
        publisher_key: str,
        token_env: str,
        actor: str,
    ) -> Subscription:
        with self._sessions.begin() as session:
            if session.scalar(select(SubscriptionRow).where(SubscriptionRow.name == name)):
                raise FeedRefused(f"a subscription named {name} exists")
            row = SubscriptionRow(
                name=name,
                url=url,
                remote_bank=remote_bank,
                local_bank=local_bank,
                publisher_key=publisher_key,
                token_env=token_env,
                last_cursor=0,
            )
            session.add(row)
            write_audit(session, actor, "subscription.add", f"subscription:{name}", url)
            session.flush()
            return _subscription(row)

    def get(self, name: str) -> Subscription:
        with self._sessions() as session:
            row = session.scalar(select(SubscriptionRow).where(SubscriptionRow.name == name))
            if row is None:
                raise FeedRefused(f"no subscription named {name}")
            return _subscription(row)

    def list(self) -> list[Subscription]:
        with self._sessions() as session:
            return [
                _subscription(r)
                for r in session.scalars(select(SubscriptionRow).order_by(SubscriptionRow.name))
            ]

    def imported_item(self, subscription_id: int, origin_uid: str) -> int | None:
        """The local item an origin item became (None: not pulled, or removed since)."""
        with self._sessions() as session:
            return session.scalar(
                select(ImportedItemRow.item_id).where(
                    ImportedItemRow.subscription_id == subscription_id,
                    ImportedItemRow.origin_uid == origin_uid,
                )
            )

    @staticmethod
    def advance(session: Session, subscription_id: int, cursor: int) -> None:
        """Move the cursor inside the transaction that applied the event at `cursor`."""
        row = session.get(SubscriptionRow, subscription_id)
        assert row is not None
        if cursor <= row.last_cursor:
            raise FeedRefused(f"event {cursor} is not after {row.last_cursor}: applied already")
        row.last_cursor = cursor
        row.last_pulled_at = utcnow()

    @staticmethod
    def remember(
        session: Session, subscription_id: int, origin_uid: str, item_id: int | None
    ) -> None:
        kept = session.scalar(
            select(ImportedItemRow).where(
                ImportedItemRow.subscription_id == subscription_id,
                ImportedItemRow.origin_uid == origin_uid,
            )
        )
        if kept is None:
            session.add(
                ImportedItemRow(
                    subscription_id=subscription_id, origin_uid=origin_uid, item_id=item_id
                )
            )
        else:
            kept.item_id = item_id

    def advance_only(self, subscription_id: int, cursor: int) -> None:
        """Move the cursor past an event that changes nothing here (in its own transaction)."""
        with self._sessions.begin() as session:
            self.advance(session, subscription_id, cursor)


def _subscription(row: SubscriptionRow) -> Subscription:
    return Subscription(
        row.id,
        row.name,
        row.url,
        row.remote_bank,
        row.local_bank,
        row.publisher_key,
        row.token_env,
        row.last_cursor,
        row.last_pulled_at,
    )
