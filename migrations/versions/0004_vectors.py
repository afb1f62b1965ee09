"""Embedding vectors kept beside each memory, for semantic recall.

Revision ID: 0004
Revises: 0003
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
        "memory_vectors",
        sa.Column("memory_id", sa.String(16), sa.ForeignKey("memories.id"), primary_key=True),
        # Which embedder made it: vectors of another model are recomputed, never mixed.
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        # float32, little-endian, L2-normalized; the content hash it was computed from.
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("memory_vectors")
