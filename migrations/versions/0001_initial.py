"""Initial schema: memories, their event log, and the FTS5 index.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

KINDS = "'preference','decision','fact','procedure','gotcha'"
STATUSES = "'active','superseded','forgotten'"


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("id", sa.String(16), nullable=False, unique=True),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("provenance", sa.Text, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'active'")),
        sa.Column("superseded_by", sa.String(16), sa.ForeignKey("memories.id"), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("use_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_used_at", sa.String(32), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.CheckConstraint(f"kind IN ({KINDS})", name="ck_memories_kind"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_memories_status"),
        sa.CheckConstraint("length(trim(content)) > 0", name="ck_memories_content"),
    )
    op.create_index("ix_memories_scope_status", "memories", ["scope", "status"])
    op.create_index("ix_memories_created", "memories", ["created_at"])
    # One active memory per fact and scope, even with several writers at once.
    op.create_index(
        "ux_memories_active_hash",
        "memories",
        ["scope", "content_hash"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("memory_id", sa.String(16), sa.ForeignKey("memories.id"), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=sa.text("'{}'")),
    )
    op.create_index("ix_events_memory", "events", ["memory_id", "id"])
    op.execute(
        "CREATE VIRTUAL TABLE memories_fts USING fts5("
        "content, content='memories', content_rowid='seq', "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    op.execute(
        "CREATE TRIGGER memories_fts_ai AFTER INSERT ON memories BEGIN "
        "INSERT INTO memories_fts(rowid, content) VALUES (new.seq, new.content); END"
    )
    op.execute(
        "CREATE TRIGGER memories_fts_ad AFTER DELETE ON memories BEGIN "
        "INSERT INTO memories_fts(memories_fts, rowid, content) "
        "VALUES ('delete', old.seq, old.content); END"
    )
    op.execute(
        "CREATE TRIGGER memories_fts_au AFTER UPDATE OF content ON memories BEGIN "
        "INSERT INTO memories_fts(memories_fts, rowid, content) "
        "VALUES ('delete', old.seq, old.content); "
        "INSERT INTO memories_fts(rowid, content) VALUES (new.seq, new.content); END"
    )


def downgrade() -> None:
    for trigger in ("memories_fts_au", "memories_fts_ad", "memories_fts_ai"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS memories_fts")
    op.drop_table("events")
    op.drop_table("memories")
