"""Banks, items, signals and counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "bank_id", sa.Integer(), sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("media_kind", sa.String(16), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_md5", sa.String(32), nullable=True),
        sa.Column("source_sha256", sa.String(64), nullable=True),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("bank_id", "name", name="uq_items_bank_name"),
    )
    op.create_index("ix_items_bank_sha256", "items", ["bank_id", "source_sha256"])
    op.create_table(
        "signals",
        sa.Column("id", _BIGINT_ID, primary_key=True),
        sa.Column(
            "item_id", sa.Integer(), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("signal_type", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("value_key", sa.String(64), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=True),
        sa.Column("timestamp", sa.Float(), nullable=True),
    )
    op.create_index("ix_signals_item_id", "signals", ["item_id"])
    op.create_index("ix_signals_type_key", "signals", ["signal_type", "value_key"])
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(counters, [{"name": "index_version", "value": 0}])


def downgrade() -> None:
    op.drop_table("counters")
    op.drop_index("ix_signals_type_key", table_name="signals")
    op.drop_index("ix_signals_item_id", table_name="signals")
    op.drop_table("signals")
    op.drop_index("ix_items_bank_sha256", table_name="items")
    op.drop_table("items")
    op.drop_table("banks")
