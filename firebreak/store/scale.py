"""The store's side of the upload path at scale: the ledger of processed queue events and the
hashes of every upload.

    queue event ──► stage works ──► one transaction: ledger row (stage, event_id) + effects
                                     (upload's hashes, review item, audit entry)
    redelivered ──► ledger row found ──► effects not repeated; what it published is published again

Queues deliver at least once: a worker killed after its transaction committed but before it
acknowledged the message gets the event again (it, or another worker). The ledger row is
inserted first in the transaction, so a twin processing the same event at the same time waits on
the row's key and then fails with a duplicate: its effects roll back, and it takes the winner's
outcome instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, Integer, String, Text, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from firebreak.store.models import Base, utcnow

Effects = Callable[[Session], Mapping[str, Any] | None]
"""Writes made in the ledger's transaction; what they return is added to the stored outcome."""


class ProcessedEventRow(Base):
    """One queue event a stage (hash, match) has acted on, and what it published for it."""

    __tablename__ = "processed_events"

    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    worker: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(Text)
    """JSON: what the stage published (or enough to publish it again)."""


class UploadHashRow(Base):
    """An upload: which file (SHA-256) it was, whose query signals are in `upload_signals`."""

    __tablename__ = "upload_hashes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    params: Mapped[str] = mapped_column(String(64))
    """Fingerprint of the settings the signals were made with: reused only when they agree."""
    source: Mapped[str] = mapped_column(Text)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UploadSignalsRow(Base):
    """A file's query signals, kept once however often it is uploaded (a 2 s clip's are ~100 kB
    of JSON: too much to repeat per upload or to carry on the queue)."""

    __tablename__ = "upload_signals"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    params: Mapped[str] = mapped_column(String(64), primary_key=True)
    signals: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class Processed:
    stage: str
    event_id: str
    processed_at: datetime
    worker: str
    outcome: Mapping[str, Any]


@dataclass(frozen=True)
class UploadHashes:
    """An upload and the key (`sha256`, `params`) of its signals."""

    id: int
    event_id: str
    sha256: str
    params: str
    source: str
    metadata: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class NewUploadHashes:
    """An upload's hashes, computed before any write; `signals` None when the file's are
    stored already."""

    sha256: str
    params: str
    source: str
    metadata: Mapping[str, Any]
    signals: Mapping[str, Any] | None


class UploadLedger:
    """Processed events and upload hashes on the store's database (any SQLAlchemy engine)."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def processed(self, stage: str, event_id: str) -> Processed | None:
        with self._sessions() as session:
            row = session.get(ProcessedEventRow, (stage, event_id))
            return None if row is None else _processed(row)

    def record(
        self,
        stage: str,
        event_id: str,
        worker: str,
        outcome: Mapping[str, Any],
        effects: Effects | None = None,
    ) -> tuple[Processed, bool]:
        """Mark `event_id` processed by `stage` with `outcome`, `effects` in the same transaction.

        Returns the ledger entry and True; or, when the event was processed already (by this
        worker before a crash, or by a twin just now), that earlier entry and False, with none
        of `effects` written."""
        try:
            with self._sessions.begin() as session:
                row = ProcessedEventRow(
                    stage=stage,
                    event_id=event_id,
                    processed_at=utcnow(),
                    worker=worker,
                    outcome=_dumps(outcome),
                )
                session.add(row)
                session.flush()  # the key first: a twin blocks here until this one ends
                extra = effects(session) if effects is not None else None
                if extra:
                    row.outcome = _dumps({**outcome, **extra})
                return _processed(row), True
        except IntegrityError:
            earlier = self.processed(stage, event_id)
            if earlier is None:
                raise  # a different constraint failed: not a duplicate
            return earlier, False

    def record_hashes(
        self, event_id: str, worker: str, hashes: NewUploadHashes, outcome: Mapping[str, Any]
    ) -> tuple[Processed, bool]:
        """The hash stage's ledger entry and the upload's hashes, in one transaction."""

        def keep(session: Session) -> None:
            session.add(
                UploadHashRow(
                    event_id=event_id,
                    sha256=hashes.sha256,
                    params=hashes.params,
                    source=hashes.source,
                    metadata_json=_dumps(hashes.metadata),
                    created_at=utcnow(),
                )
            )
            if hashes.signals is not None:
                _insert_signals(session, hashes.sha256, hashes.params, hashes.signals)

        return self.record("hash", event_id, worker, outcome, keep)

    def upload_hashes(self, event_id: str) -> UploadHashes | None:
        with self._sessions() as session:
            row = session.scalar(select(UploadHashRow).where(UploadHashRow.event_id == event_id))
            return None if row is None else _upload_hashes(row)

    def has_signals(self, sha256: str, params: str) -> bool:
        """Whether the file's signals (made with these settings) are stored: the same file
        uploaded again (the common case in a crisis) is not decoded again."""
        with self._sessions() as session:
            found = session.scalar(
                select(UploadSignalsRow.sha256).where(
                    UploadSignalsRow.sha256 == sha256, UploadSignalsRow.params == params
                )
            )
        return found is not None

    def signals(self, sha256: str, params: str) -> Mapping[str, Any] | None:
        """The file's stored query signals, None when there are none."""
        with self._sessions() as session:
            value = session.scalar(
                select(UploadSignalsRow.signals).where(
                    UploadSignalsRow.sha256 == sha256, UploadSignalsRow.params == params
                )
            )
        return None if value is None else dict(json.loads(value))

    def iter_stored_files(self, params: str, batch: int = 5000) -> Iterator[str]:
        """The SHA-256 of every distinct uploaded file whose signals were stored with `params`,
        in order, without reading the signals: a sweep's catalogue."""
        last = ""
        while True:
            with self._sessions() as session:
                rows = session.scalars(
                    select(UploadSignalsRow.sha256)
                    .where(UploadSignalsRow.params == params, UploadSignalsRow.sha256 > last)
                    .order_by(UploadSignalsRow.sha256)
                    .limit(batch)
                ).all()
            if not rows:
                return
            yield from (str(r) for r in rows)
            last = str(rows[-1])

    def uploads_of_file(self, sha256: str) -> list[UploadHashes]:
        """Every upload of the file, oldest first (whom a sweep's late match concerns)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(UploadHashRow)
                .where(UploadHashRow.sha256 == sha256)
                .order_by(UploadHashRow.id)
            ).all()
            return [_upload_hashes(r) for r in rows]

    def count(self, stage: str) -> int:
        with self._sessions() as session:
            n = session.scalar(
                select(func.count())
                .select_from(ProcessedEventRow)
                .where(ProcessedEventRow.stage == stage)
            )
            return int(n or 0)


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), sort_keys=True, default=str, separators=(",", ":"))


def _utc(at: datetime) -> datetime:
    """SQLite hands back naive times; every time stored here is UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _processed(row: ProcessedEventRow) -> Processed:
    return Processed(
        row.stage, row.event_id, _utc(row.processed_at), row.worker, json.loads(row.outcome)
    )


def _upload_hashes(row: UploadHashRow) -> UploadHashes:
    return UploadHashes(
        row.id,
        row.event_id,
        row.sha256,
        row.params,
        row.source,
        json.loads(row.metadata_json),
        _utc(row.created_at),
    )


def _insert_signals(session: Session, sha256: str, params: str, signals: Mapping[str, Any]) -> None:
    """Keep a file's signals unless another upload of it did first (its twin hashed at the
    same time): an insert that skips a conflict, not an error that undoes the transaction."""
    values = {
        "sha256": sha256,
        "params": params,
        "signals": _dumps(signals),
        "created_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(UploadSignalsRow).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite_insert(UploadSignalsRow).values(values).on_conflict_do_nothing())
    elif session.get(UploadSignalsRow, (sha256, params)) is None:
        session.add(UploadSignalsRow(**values))


__all__ = [
    "NewUploadHashes",
    "Processed",
    "UploadHashes",
    "UploadLedger",
]
