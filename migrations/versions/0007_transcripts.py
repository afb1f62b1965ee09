"""Agents' transcripts as a source: how far each transcript file has been journaled.

One row per file engram reads (Claude Code, Codex, Gemini CLI, Qwen Code sessions).
`offset` is the byte position up to which every complete piece of conversation is in
the journal; it commits in the same transaction as those pieces, so a crash neither
loses nor repeats one. `size`, `mtime_ns`, `inode` and `head` (a hash of the file's
first bytes) tell "grew" from "unchanged" and from "replaced or rewritten" (then the
file is read again from the start; the journal drops what it already has).

Revision ID: 0007
Revises: 0006
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
        "transcript_files",
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("agent", sa.String(16), nullable=False),
        sa.Column("conversation", sa.Text, nullable=True),
        sa.Column("project", sa.Text, nullable=True),
        sa.Column("offset", sa.Integer, nullable=False, server_default="0"),
        sa.Column("size", sa.Integer, nullable=False, server_default="0"),
        sa.Column("mtime_ns", sa.Integer, nullable=False, server_default="0"),
        sa.Column("inode", sa.Integer, nullable=False, server_default="0"),
        sa.Column("head", sa.String(64), nullable=False, server_default=""),
        sa.Column("pieces", sa.Integer, nullable=False, server_default="0"),
        sa.Column("turns", sa.Integer, nullable=False, server_default="0"),
        # why the file's conversations are not journaled (engram's own analyzer sessions)
        sa.Column("skipped", sa.Text, nullable=True),
        sa.Column("bad_lines", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_transcript_files_agent", "transcript_files", ["agent"])


def downgrade() -> None:
    op.drop_index("ix_transcript_files_agent", "transcript_files")
    op.drop_table("transcript_files")
