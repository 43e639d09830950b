"""Uploads held for review.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("media", sa.Text(), nullable=True),
        sa.Column("media_sha256", sa.String(64), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("matches", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("banked_bank", sa.String(200), nullable=True),
        sa.Column("banked_item", sa.String(500), nullable=True),
    )
    op.create_index("ix_reviews_status_score", "reviews", ["status", "score"])


def downgrade() -> None:
    op.drop_index("ix_reviews_status_score", table_name="reviews")
    op.drop_table("reviews")
