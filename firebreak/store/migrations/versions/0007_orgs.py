"""The registry of designated organisations and individuals: its versions, entries and aliases.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_versions",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "orgs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("category", sa.String(200), nullable=False),
        sa.Column("designated_on", sa.String(10), nullable=True),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.UniqueConstraint("source", "kind", "name", name="uq_orgs_source_kind_name"),
    )
    op.create_index("ix_orgs_source", "orgs", ["source"])
    op.create_table(
        "org_aliases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("lang", sa.String(35), nullable=True),
    )
    op.create_index("ix_org_aliases_org_id", "org_aliases", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_org_aliases_org_id", table_name="org_aliases")
    op.drop_table("org_aliases")
    op.drop_index("ix_orgs_source", table_name="orgs")
    op.drop_table("orgs")
    op.drop_table("org_versions")
