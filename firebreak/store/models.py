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
    false,
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
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Published in the feed partners pull."""
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
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """False: kept, but matches nothing (partners called it a false positive) until decided."""
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
    banks: Mapped[str | None] = mapped_column(Text, nullable=True)
    """A JSON list of the banks a (partner) key may pull; None: every bank its role allows."""


class ReviewRow(Base):
    """An upload held for people to look at: its media kept, its matches, the decision on it.

    Lifecycle: open ──► confirmed (banked, blocked) | rejected (optionally allow-listed)
                  └──► escalated ──► confirmed | rejected
    """

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_status_score", "status", "score"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(500))
    media: Mapped[str | None] = mapped_column(Text, nullable=True)
    media_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    verdict: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float, default=0.0)
    matches: Mapped[str] = mapped_column(Text, default="[]")
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    banked_bank: Mapped[str | None] = mapped_column(String(200), nullable=True)
    banked_item: Mapped[str | None] = mapped_column(String(500), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="media", server_default="media")
    content_text: Mapped[str | None] = mapped_column(Text, nullable=True)


class FeedEventRow(Base):
    """One change to a shared bank, as partners pull it: an item added, removed (a tombstone), or
    an opinion on it. `cursor` only grows, so a partner resumes after the last one it applied."""

    __tablename__ = "feed_events"
    __table_args__ = (Index("ix_feed_events_bank_cursor", "bank", "cursor"),)

    cursor: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    bank: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    item_uid: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SubscriptionRow(Base):
    """A partner's shared bank this instance pulls, and how far it has applied it."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(Text)
    remote_bank: Mapped[str] = mapped_column(String(200))
    local_bank: Mapped[str] = mapped_column(String(200))
    publisher_key: Mapped[str] = mapped_column(Text)
    """The publisher's Ed25519 public key (PEM): batches signed by anything else are refused."""
    token_env: Mapped[str] = mapped_column(String(200))
    """The environment variable that holds the partner token (secrets stay out of the store)."""
    last_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    last_pulled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ImportedItemRow(Base):
    """Which local item an item pulled from a partner became, so removals and repeats apply once."""

    __tablename__ = "imported_items"
    __table_args__ = (UniqueConstraint("subscription_id", "origin_uid", name="uq_imported_origin"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    origin_uid: Mapped[str] = mapped_column(String(200))
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("items.id", ondelete="SET NULL"), nullable=True
    )


class OpinionRow(Base):
    """A partner's opinion on one of this instance's shared items."""

    __tablename__ = "opinions"
    __table_args__ = (UniqueConstraint("item_id", "partner", name="uq_opinions_item_partner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    partner: Mapped[str] = mapped_column(String(200))
    opinion: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IndexChangeRow(Base):
    """What one `index_version` step changed: the indexed signal ids added and removed, so that
    another process catches its index up step by step instead of rebuilding it."""

    __tablename__ = "index_changes"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    added: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of signal ids (their values are read from `signals`)."""
    removed: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of [signal id, signal type] (the rows are gone)."""


class OrgVersionRow(Base):
    """One version of the registry of designated organisations and individuals: every import
    makes one, recording who imported which file (its name and SHA-256) and how many entries."""

    __tablename__ = "org_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    """The designation sources the import replaced, comma-separated."""
    file_name: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    entry_count: Mapped[int] = mapped_column(Integer)


class OrgRow(Base):
    """A designated organisation or individual, as its designation source lists it."""

    __tablename__ = "orgs"
    __table_args__ = (UniqueConstraint("source", "kind", "name", name="uq_orgs_source_kind_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(200), index=True)
    category: Mapped[str] = mapped_column(String(200), default="")
    designated_on: Mapped[str | None] = mapped_column(String(10), nullable=True)
    """ISO date (YYYY-MM-DD) the source designated it on, when known."""
    reference: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[int] = mapped_column(Integer)
    """The registry version that last added or changed this entry."""
    aliases: Mapped[list[OrgAliasRow]] = relationship(
        back_populates="org",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="OrgAliasRow.position",
    )


class OrgAliasRow(Base):
    """Another way an organisation or individual is named: an abbreviation, a transliteration,
    a slogan, a coded number or symbol."""

    __tablename__ = "org_aliases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(String(1000))
    kind: Mapped[str] = mapped_column(String(32))
    lang: Mapped[str | None] = mapped_column(String(35), nullable=True)
    org: Mapped[OrgRow] = relationship(back_populates="aliases")
