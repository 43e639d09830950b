"""Live incidents and the audit log: the store's record of what was seen and what was decided.

An incident opens with a stream's first alert and collects every later alert of the same stream;
it waits in the review queue (highest risk first) until a person or a rule decides on it:

    open ──► confirmed (its recording banked) ──► confirmed again (a longer recording re-banked)
      │ ╲
      │  ╲──► escalated ──► confirmed | rejected
      └──────► rejected

Every change is written to the audit log in the same transaction as the change itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from firebreak.errors import DecisionRefused, IncidentNotFound
from firebreak.store.models import AuditRow, IncidentAlertRow, IncidentRow, utcnow

INCIDENT_STATUSES = ("open", "escalated", "confirmed", "rejected")
_DECISION_ACTIONS = {
    "confirmed": "incident.confirm",
    "rejected": "incident.reject",
    "escalated": "incident.escalate",
}
DECISIONS = frozenset(_DECISION_ACTIONS)
_ALLOWED = {
    "open": {"confirmed", "rejected", "escalated"},
    "escalated": {"confirmed", "rejected"},
    "confirmed": {"confirmed"},
    "rejected": set(),
}
_LEVEL_RANK = {"review": 0, "alert": 1}


@dataclass(frozen=True)
class IncidentAlert:
    """One alert of a stream, as kept with its incident."""

    stream_time: float
    wall_time: float
    source: str
    level: str
    bank: str | None = None
    item: str | None = None
    score: float | None = None
    signals: Mapping[str, Any] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)
    frame: str | None = None
    """The frame grab's path, relative to the incident's folder."""

    def to_json(self) -> dict[str, object]:
        return {
            "stream_time": round(self.stream_time, 3),
            "wall_time": round(self.wall_time, 3),
            "source": self.source,
            "level": self.level,
            "bank": self.bank,
            "item": self.item,
            "score": None if self.score is None else round(self.score, 4),
            "signals": dict(self.signals),
            "actions": dict(self.actions),
            "frame": self.frame,
        }


@dataclass(frozen=True)
class Incident:
    id: int
    name: str
    stream: str
    status: str
    level: str
    source: str
    bank: str | None
    item: str | None
    max_score: float
    first_stream_time: float
    last_stream_time: float
    recording: str | None
    banked_bank: str | None
    banked_item: str | None
    opened_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    alerts: tuple[IncidentAlert, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "stream": self.stream,
            "status": self.status,
            "level": self.level,
            "source": self.source,
            "bank": self.bank,
            "item": self.item,
            "max_score": round(self.max_score, 4),
            "first_stream_time": round(self.first_stream_time, 3),
            "last_stream_time": round(self.last_stream_time, 3),
            "recording": self.recording,
            "banked": (
                {"bank": self.banked_bank, "item": self.banked_item} if self.banked_bank else None
            ),
            "opened_at": self.opened_at.isoformat(),
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decision_note": self.decision_note,
            "alerts": [alert.to_json() for alert in self.alerts],
        }


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    reason: str
    evidence: Mapping[str, Any]

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "reason": self.reason,
            "evidence": dict(self.evidence),
        }


def write_audit(
    session: Session,
    actor: str,
    action: str,
    subject: str,
    reason: str = "",
    evidence: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry inside the caller's transaction, so the change and its record land
    together or not at all."""
    session.add(
        AuditRow(
            at=utcnow(),
            actor=actor,
            action=action,
            subject=subject,
            reason=reason,
            evidence=json.dumps(dict(evidence or {}), sort_keys=True, default=str),
        )
    )


class AuditLog:
    """Reads and appends; nothing here (nor the database, by trigger) updates or deletes."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def append(
        self,
        actor: str,
        action: str,
        subject: str,
        reason: str = "",
        evidence: Mapping[str, Any] | None = None,
    ) -> None:
        with self._sessions.begin() as session:
            write_audit(session, actor, action, subject, reason, evidence)

    def entries(self, subject: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first, of one subject or of all."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if subject is not None:
            query = query.where(AuditRow.subject == subject)
        with self._sessions() as session:
            return [
                AuditEntry(
                    row.id,
                    row.at,
                    row.actor,
                    row.action,
                    row.subject,
                    row.reason,
                    json.loads(row.evidence),
                )
                for row in session.scalars(query)
            ]


class Incidents:
    """The incidents of live streams: opened by alerts, decided by reviewers or rules."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record_alert(
        self, name: str, stream: str, recording: str | None, alert: IncidentAlert, actor: str
    ) -> Incident:
        """Add `alert` to the incident `name`, opening it with this alert if it is new."""
        with self._sessions.begin() as session:
            row = self._row(session, name, missing_ok=True)
            if row is None:
                row = IncidentRow(
                    name=name,
                    stream=stream,
                    status="open",
                    level=alert.level,
                    source=alert.source,
                    bank=alert.bank,
                    item=alert.item,
                    max_score=alert.score or 0.0,
                    first_stream_time=alert.stream_time,
                    last_stream_time=alert.stream_time,
                    recording=recording,
                    opened_at=utcnow(),
                )
                session.add(row)
                write_audit(
                    session,
                    actor,
                    "incident.open",
                    _subject(name),
                    f"{alert.level} from {alert.source}",
                    alert.to_json(),
                )
            else:
                if _LEVEL_RANK.get(alert.level, 0) > _LEVEL_RANK.get(row.level, 0):
                    row.level = alert.level
                row.max_score = max(row.max_score, alert.score or 0.0)
                row.last_stream_time = max(row.last_stream_time, alert.stream_time)
                if row.bank is None and alert.bank is not None:
                    row.bank, row.item = alert.bank, alert.item
            row.alerts.append(
                IncidentAlertRow(
                    stream_time=alert.stream_time,
                    wall_time=alert.wall_time,
                    source=alert.source,
                    level=alert.level,
                    bank=alert.bank,
                    item=alert.item,
                    score=alert.score,
                    signals=json.dumps(dict(alert.signals), sort_keys=True, default=str),
                    actions=json.dumps(dict(alert.actions), sort_keys=True),
                    frame=alert.frame,
                )
            )
            session.flush()
            return _incident(row)

    def get(self, name: str) -> Incident:
        with self._sessions() as session:
            row = self._row(session, name)
            assert row is not None
            return _incident(row)

    def queue(
        self, statuses: tuple[str, ...] = ("open", "escalated"), limit: int = 100
    ) -> list[Incident]:
        """Incidents waiting for a decision, highest risk first (alerts before reviews)."""
        query = (
            select(IncidentRow)
            .options(selectinload(IncidentRow.alerts))
            .where(IncidentRow.status.in_(statuses))
            .order_by(
                (IncidentRow.level == "alert").desc(),
                IncidentRow.max_score.desc(),
                IncidentRow.opened_at,
            )
            .limit(limit)
        )
        with self._sessions() as session:
            return [_incident(row) for row in session.scalars(query)]

    def decide(
        self,
        name: str,
        decision: str,
        actor: str,
        note: str = "",
        banked: tuple[str, str] | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> Incident:
        """Move the incident to `decision` (confirmed, rejected, escalated), recording who and
        why; a confirmation may carry where its recording was banked."""
        if decision not in DECISIONS:
            raise DecisionRefused(_subject(name), f"unknown decision {decision!r}")
        with self._sessions.begin() as session:
            row = self._row(session, name)
            assert row is not None
            if decision not in _ALLOWED[row.status]:
                raise DecisionRefused(_subject(name), f"cannot go from {row.status} to {decision}")
            row.status = decision
            row.decided_by = actor
            row.decided_at = utcnow()
            row.decision_note = note or None
            if banked is not None:
                row.banked_bank, row.banked_item = banked
            write_audit(
                session,
                actor,
                _DECISION_ACTIONS[decision],
                _subject(name),
                note,
                dict(evidence or {}) | ({"banked": list(banked)} if banked else {}),
            )
            session.flush()
            return _incident(row)

    def _row(self, session: Session, name: str, missing_ok: bool = False) -> IncidentRow | None:
        row = session.scalar(
            select(IncidentRow)
            .options(selectinload(IncidentRow.alerts))
            .where(IncidentRow.name == name)
        )
        if row is None and not missing_ok:
            raise IncidentNotFound(name)
        return row


def _subject(name: str) -> str:
    return f"incident:{name}"


def _incident(row: IncidentRow) -> Incident:
    return Incident(
        row.id,
        row.name,
        row.stream,
        row.status,
        row.level,
        row.source,
        row.bank,
        row.item,
        row.max_score,
        row.first_stream_time,
        row.last_stream_time,
        row.recording,
        row.banked_bank,
        row.banked_item,
        row.opened_at,
        row.decided_by,
        row.decided_at,
        row.decision_note,
        tuple(
            IncidentAlert(
                a.stream_time,
                a.wall_time,
                a.source,
                a.level,
                a.bank,
                a.item,
                a.score,
                json.loads(a.signals),
                json.loads(a.actions),
                a.frame,
            )
            for a in sorted(row.alerts, key=lambda a: (a.stream_time, a.id or 0))
        ),
    )
