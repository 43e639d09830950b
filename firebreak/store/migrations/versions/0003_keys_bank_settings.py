"""API keys; per-bank settings (enabled, score thresholds, metadata) and item metadata.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False, unique=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("banks") as banks:
        banks.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        banks.add_column(sa.Column("match_score", sa.Float(), nullable=True))
        banks.add_column(sa.Column("review_score", sa.Float(), nullable=True))
        banks.add_column(sa.Column("metadata_json", sa.Text(), nullable=False, server_default="{}"))
    with op.batch_alter_table("items") as items:
        items.add_column(sa.Column("metadata_json", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("items") as items:
        items.drop_column("metadata_json")
    with op.batch_alter_table("banks") as banks:
        for column in ("metadata_json", "review_score", "match_score", "enabled"):
            banks.drop_column(column)
    op.drop_table("api_keys")
