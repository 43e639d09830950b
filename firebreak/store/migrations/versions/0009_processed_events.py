"""The upload path at scale: which queue events each stage has acted on, and uploads' hashes.

`processed_events` is the ledger that makes at-least-once delivery act once: a stage inserts
(stage, event_id) in the same transaction as the event's effects, so a redelivered event finds
its row and only repeats what it published. `upload_hashes` records every upload's file (SHA-256)
and `upload_signals` each file's query signals, once however often it is uploaded, so a later sweep
matches them against new banks without decoding the media again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("stage", sa.String(16), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
    )
    op.create_table(
        "upload_hashes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("event_id", sa.String(200), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("params", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_upload_hashes_sha256", "upload_hashes", ["sha256"])
    op.create_table(
        "upload_signals",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("params", sa.String(64), primary_key=True),
        sa.Column("signals", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upload_signals")
    op.drop_index("ix_upload_hashes_sha256", table_name="upload_hashes")
    op.drop_table("upload_hashes")
    op.drop_table("processed_events")
