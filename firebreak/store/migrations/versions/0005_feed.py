"""Sharing between instances: the feed of shared banks, subscriptions to partners' feeds, the
items pulled from them, partners' opinions; item and bank flags; partner keys scoped to banks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("banks") as banks:
        banks.add_column(
            sa.Column("shared", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("items") as items:
        items.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("api_keys") as keys:
        keys.add_column(sa.Column("banks", sa.Text(), nullable=True))
    op.create_table(
        "feed_events",
        sa.Column("cursor", _BIGINT_ID, primary_key=True),
        sa.Column("bank", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_uid", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feed_events_bank_cursor", "feed_events", ["bank", "cursor"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("remote_bank", sa.String(200), nullable=False),
        sa.Column("local_bank", sa.String(200), nullable=False),
        sa.Column("publisher_key", sa.Text(), nullable=False),
        sa.Column("token_env", sa.String(200), nullable=False),
        sa.Column("last_cursor", sa.BigInteger(), nullable=False),
        sa.Column("last_pulled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "imported_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "subscription_id",
            sa.Integer(),
            sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("origin_uid", sa.String(200), nullable=False),
        sa.Column(
            "item_id", sa.Integer(), sa.ForeignKey("items.id", ondelete="SET NULL"), nullable=True
        ),
        sa.UniqueConstraint("subscription_id", "origin_uid", name="uq_imported_origin"),
    )
    op.create_index("ix_imported_items_subscription_id", "imported_items", ["subscription_id"])
    op.create_table(
        "opinions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "item_id", sa.Integer(), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("partner", sa.String(200), nullable=False),
        sa.Column("opinion", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("item_id", "partner", name="uq_opinions_item_partner"),
    )
    op.create_index("ix_opinions_item_id", "opinions", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_opinions_item_id", table_name="opinions")
    op.drop_table("opinions")
    op.drop_index("ix_imported_items_subscription_id", table_name="imported_items")
    op.drop_table("imported_items")
    op.drop_table("subscriptions")
    op.drop_index("ix_feed_events_bank_cursor", table_name="feed_events")
    op.drop_table("feed_events")
    with op.batch_alter_table("api_keys") as keys:
        keys.drop_column("banks")
    with op.batch_alter_table("items") as items:
        items.drop_column("enabled")
    with op.batch_alter_table("banks") as banks:
        banks.drop_column("shared")
