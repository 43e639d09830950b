"""Uploads held for review: the queue moderators work, highest risk first.

A scan whose rules say "hold" keeps the upload's media and its matches here until a person
decides (see `incidents.py` for live streams, which follow the same lifecycle):

    open ──► confirmed (banked into a block list) | rejected (optionally allow-listed)
      └────► escalated ──► confirmed | rejected
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from firebreak.errors import DecisionRefused, FirebreakError
from firebreak.store.incidents import write_audit
from firebreak.store.models import ReviewRow, utcnow

REVIEW_STATUSES = ("open", "escalated", "confirmed", "rejected")
_ALLOWED = {
    "open": {"confirmed", "rejected", "escalated"},
    "escalated": {"confirmed", "rejected"},
    "confirmed": set(),
    "rejected": set(),
}
_ACTIONS = {
    "confirmed": "review.confirm",
    "rejected": "review.reject",
    "escalated": "review.escalate",
}


class ReviewNotFound(FirebreakError):
    def __init__(self, review_id: int) -> None:
        super().__init__(f"review item not found: {review_id}")
        self.review_id = review_id


@dataclass(frozen=True)
class Review:
    id: int
    subject: str
    media: str | None
    media_sha256: str | None
    verdict: str
    score: float
    matches: tuple[Mapping[str, Any], ...]
    status: str
    created_at: datetime
    created_by: str
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    banked_bank: str | None
    banked_item: str | None
    kind: str = "media"
    """"media" for an upload, "text" for a post."""
    content_text: str | None = None
    """A post's text."""

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "subject": self.subject,
            "media_sha256": self.media_sha256,
            "verdict": self.verdict,
            "score": round(self.score, 4),
            "matches": [dict(m) for m in self.matches],
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decision_note": self.decision_note,
            "banked": (
                {"bank": self.banked_bank, "item": self.banked_item} if self.banked_bank else None
            ),
            "kind": self.kind,
            "text": self.content_text,
        }


class Reviews:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def hold(
        self,
        subject: str,
        media: str | None,
        media_sha256: str | None,
        verdict: str,
        matches: Sequence[Mapping[str, Any]],
        actor: str,
        kind: str = "media",
        text: str | None = None,
    ) -> Review:
        """Put an upload (or a post: `kind` "text" with its `text`) in the queue with its
        matches (best first)."""
        with self._sessions.begin() as session:
            row = hold_in(
                session, subject, media, media_sha256, verdict, matches, actor, kind, text
            )
            return _review(row)

    def get(self, review_id: int) -> Review:
        with self._sessions() as session:
            return _review(self._row(session, review_id))

    def queue(
        self, statuses: tuple[str, ...] = ("open", "escalated"), limit: int = 100
    ) -> list[Review]:
        """Items waiting for a decision, highest score first, oldest first among equals."""
        query = (
            select(ReviewRow)
            .where(ReviewRow.status.in_(statuses))
            .order_by(ReviewRow.score.desc(), ReviewRow.created_at, ReviewRow.id)
            .limit(limit)
        )
        with self._sessions() as session:
            return [_review(row) for row in session.scalars(query)]

    def decide(
        self,
        review_id: int,
        decision: str,
        actor: str,
        note: str = "",
        banked: tuple[str, str] | None = None,
    ) -> Review:
        if decision not in _ACTIONS:
            raise DecisionRefused(f"review:{review_id}", f"unknown decision {decision!r}")
        with self._sessions.begin() as session:
            row = self._row(session, review_id)
            if decision not in _ALLOWED[row.status]:
                raise DecisionRefused(
                    f"review:{review_id}", f"cannot go from {row.status} to {decision}"
                )
            row.status = decision
            row.decided_by = actor
            row.decided_at = utcnow()
            row.decision_note = note or None
            if banked is not None:
                row.banked_bank, row.banked_item = banked
            write_audit(
                session,
                actor,
                _ACTIONS[decision],
                f"review:{review_id}",
                note,
                {"banked": list(banked)} if banked else {},
            )
            session.flush()
            return _review(row)

    def _row(self, session: Session, review_id: int) -> ReviewRow:
        row = session.get(ReviewRow, review_id)
        if row is None:
            raise ReviewNotFound(review_id)
        return row


def hold_in(
    session: Session,
    subject: str,
    media: str | None,
    media_sha256: str | None,
    verdict: str,
    matches: Sequence[Mapping[str, Any]],
    actor: str,
    kind: str = "media",
    text: str | None = None,
) -> ReviewRow:
    """Queue an upload or a post for review inside the caller's transaction, with its audit
    entry: a worker holds an upload in the same transaction as the rest of its effects."""
    score = max((float(m.get("score") or 0.0) for m in matches), default=0.0)
    row = ReviewRow(
        subject=subject[:500],
        media=media,
        media_sha256=media_sha256,
        verdict=verdict,
        score=score,
        matches=json.dumps([dict(m) for m in matches], sort_keys=True, default=str),
        status="open",
        created_at=utcnow(),
        created_by=actor,
        kind=kind,
        content_text=text,
    )
    session.add(row)
    session.flush()
    write_audit(
        session,
        actor,
        "review.hold",
        f"review:{row.id}",
        f"{verdict} at {score:.2f}: {subject[:200]}",
        {"matches": [dict(m) for m in matches][:5], "sha256": media_sha256},
    )
    return row


def _review(row: ReviewRow) -> Review:
    return Review(
        row.id,
        row.subject,
        row.media,
        row.media_sha256,
        row.verdict,
        row.score,
        tuple(json.loads(row.matches)),
        row.status,
        row.created_at,
        row.created_by,
        row.decided_by,
        row.decided_at,
        row.decision_note,
        row.banked_bank,
        row.banked_item,
        row.kind,
        row.content_text,
    )
