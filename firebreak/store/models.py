"""Tables: banks, the items banked in them, each item's signals, and the index version counter.

Lifecycle of a bank item:

    file ──hash──► Item + Signals (one transaction) ──► index updated ──► matchable
                        │
                        └── remove: Item deleted (signals cascade) ──► ids dropped from index

An item's perceptual signals (PDQ of an image, one PDQ per sampled video frame) are rows in `signals`
whose primary key is the id the Hamming index stores. Exact digests (md5, sha256) are rows too and are
looked up by value. Signals of a type Firebreak does not know are kept and exported unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class BankRow(Base):
    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="block")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Per-bank score thresholds; the settings' when unset.
    match_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    review_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    items: Mapped[list[ItemRow]] = relationship(
        back_populates="bank", cascade="all, delete-orphan", passive_deletes=True
    )


class ItemRow(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("bank_id", "name", name="uq_items_bank_name"),
        Index("ix_items_bank_sha256", "bank_id", "source_sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    media_kind: Mapped[str] = mapped_column(String(16))
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    source_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    source_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    bank: Mapped[BankRow] = relationship(back_populates="items")
    signals: Mapped[list[SignalRow]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True
    )


class SignalRow(Base):
    __tablename__ = "signals"
    __table_args__ = (Index("ix_signals_type_key", "signal_type", "value_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    signal_type: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    # The value itself when short (digests, frame hashes), else its SHA-256: what exact lookups use.
    value_key: Mapped[str] = mapped_column(String(64))
    quality: Mapped[int | None] = mapped_column(Integer, nullable=True)
    timestamp: Mapped[float | None] = mapped_column(Float, nullable=True)
    item: Mapped[ItemRow] = relationship(back_populates="signals")


class CounterRow(Base):
    """Named monotonic counters; `index_version` moves with every change to indexed signals."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class IncidentRow(Base):
    """A live incident: a stream that raised an alert, its evidence and the decision on it.

    Lifecycle: open (in the review queue) ──► confirmed (recording banked) | rejected | escalated.
    """

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_status_score", "status", "max_score"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    stream: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    level: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(64))
    bank: Mapped[str | None] = mapped_column(String(200), nullable=True)
    item: Mapped[str | None] = mapped_column(String(500), nullable=True)
    max_score: Mapped[float] = mapped_column(Float, default=0.0)
    first_stream_time: Mapped[float] = mapped_column(Float)
    last_stream_time: Mapped[float] = mapped_column(Float)
    recording: Mapped[str | None] = mapped_column(Text, nullable=True)
    banked_bank: Mapped[str | None] = mapped_column(String(200), nullable=True)
    banked_item: Mapped[str | None] = mapped_column(String(500), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    alerts: Mapped[list[IncidentAlertRow]] = relationship(
        back_populates="incident",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="IncidentAlertRow.stream_time",
    )


class IncidentAlertRow(Base):
    """One alert of an incident: when, which signal, how sure, what was done, a frame grab."""

    __tablename__ = "incident_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    stream_time: Mapped[float] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    bank: Mapped[str | None] = mapped_column(String(200), nullable=True)
    item: Mapped[str | None] = mapped_column(String(500), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    signals: Mapped[str] = mapped_column(Text, default="{}")
    actions: Mapped[str] = mapped_column(Text, default="{}")
    frame: Mapped[str | None] = mapped_column(Text, nullable=True)
    incident: Mapped[IncidentRow] = relationship(back_populates="alerts")


class AuditRow(Base):
    """One automated or human decision: who, what, on what, why, with which evidence.

    Append-only: the database itself refuses updates and deletes (triggers in the migration)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="{}")


class ApiKeyRow(Base):
    """An API key: its role, and the SHA-256 of the key (the key itself is never stored)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
