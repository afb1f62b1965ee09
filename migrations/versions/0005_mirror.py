"""The MuninnDB mirror: an outbox of memory changes and the MuninnDB id of each memory.

`mirror_outbox` gets a row in the same transaction as every memory change (see
engram/store/memories.py); the sync job reconciles each changed memory with MuninnDB
and marks its rows done or failed. `mirror_ids` is what MuninnDB holds for each local
memory: where (vault, id), which text (content_hash), whether it is active or
forgotten there (and since when: MuninnDB restores within 7 days), plus the write in
flight (`intent`) so a crash between MuninnDB's answer and our commit can be repaired.

Memories that exist when this migration runs are queued once, so enabling the mirror
later mirrors them too.

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
        # add | edit | supersede | forget | restore (| resync): the local change to mirror
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.String(32), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("done_at", sa.String(32), nullable=True),
        sa.CheckConstraint("status IN ('pending','done','failed')", name="ck_outbox_status"),
        # Row ids are part of MuninnDB op_ids: never reuse one after pruning done rows.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_status", "mirror_outbox", ["status", "id"])
    op.create_index("ix_outbox_memory", "mirror_outbox", ["memory_id", "id"])
    op.create_table(
        "mirror_ids",
        sa.Column("memory_id", sa.String(16), primary_key=True),
        sa.Column("vault", sa.Text, nullable=False),
        sa.Column("muninn_id", sa.Text, nullable=True),
        sa.Column("synced_at", sa.String(32), nullable=True),
        # engram's content hash of the text MuninnDB holds under muninn_id
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False, server_default="none"),
        sa.Column("forgotten_at", sa.String(32), nullable=True),
        # JSON {vault, content, hash, op_id} of a remember sent but not yet recorded
        sa.Column("intent", sa.Text, nullable=True),
        sa.CheckConstraint("state IN ('none','active','forgotten')", name="ck_mirror_state"),
    )
    op.create_index("ix_mirror_ids_muninn", "mirror_ids", ["vault", "muninn_id"])
    op.execute(
        "INSERT INTO mirror_outbox (memory_id, op, payload, status, attempts, created_at) "
        "SELECT id, 'add', '{}', 'pending', 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
        "FROM memories WHERE status = 'active' ORDER BY seq"
    )


def downgrade() -> None:
    op.drop_index("ix_mirror_ids_muninn", table_name="mirror_ids")
    op.drop_table("mirror_ids")
    op.drop_table("mirror_outbox")
