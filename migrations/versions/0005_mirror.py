"""The MuninnDB mirror: an outbox of memory changes and the MuninnDB id of each memory.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mirror_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("memory_id", sa.String(16), nullable=False),
        # add | edit | supersede | forget | restore: the local change to mirror
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.String(32), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("done_at", sa.String(32), nullable=True),
        sa.CheckConstraint("status IN ('pending','done','failed')", name="ck_outbox_status"),
    )
    op.create_index("ix_outbox_status", "mirror_outbox", ["status", "id"])
    op.create_index("ix_outbox_memory", "mirror_outbox", ["memory_id", "id"])
    op.create_table(
        "mirror_ids",
        sa.Column("memory_id", sa.String(16), primary_key=True),
        sa.Column("vault", sa.Text, nullable=False),
        sa.Column("muninn_id", sa.Text, nullable=True),
        sa.Column("synced_at", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("mirror_ids")
    op.drop_table("mirror_outbox")
