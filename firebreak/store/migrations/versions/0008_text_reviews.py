"""Posts held for review beside uploads: a review's kind and the post's text.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="media"))
        batch.add_column(sa.Column("content_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("content_text")
        batch.drop_column("kind")
