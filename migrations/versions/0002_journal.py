"""The journal: captured exchanges, per-conversation delta state, and source cursors.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        # The source's identity for the flow (mitmweb flow id, proxy request id, file+flow
        # id): the exactly-once key. The fingerprint catches the same flow under a new id.
        sa.Column("source_key", sa.Text, nullable=False, unique=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(24), nullable=False),
        sa.Column("provider", sa.String(24), nullable=False, server_default=""),
        sa.Column("host", sa.Text, nullable=False, server_default=""),
        sa.Column("endpoint", sa.Text, nullable=False, server_default=""),
        sa.Column("model", sa.Text, nullable=True),
        sa.Column("conversation", sa.Text, nullable=False, server_default=""),
        sa.Column("project", sa.Text, nullable=True),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("stream", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("truncated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("started_at", sa.String(32), nullable=True),
        sa.Column("ended_at", sa.String(32), nullable=True),
        sa.Column("captured_at", sa.String(32), nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_read_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_creation_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("request_bytes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("response_bytes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("new_turns", sa.Integer, nullable=False, server_default="0"),
        # The turns never journaled before in this conversation (reply last), redacted.
        sa.Column("turns", sa.Text, nullable=False, server_default="[]"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("analyzed_at", sa.String(32), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending','analyzed','skipped','failed')", name="ck_exchanges_status"
        ),
        sa.CheckConstraint(
            "kind IN ('conversation','side-call','internal')", name="ck_exchanges_kind"
        ),
    )
    op.create_index("ix_exchanges_status", "exchanges", ["status", "id"])
    op.create_index("ix_exchanges_conversation", "exchanges", ["conversation", "id"])
    op.create_index("ix_exchanges_captured", "exchanges", ["captured_at"])
    op.create_table(
        "conversations",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("project", sa.Text, nullable=True),
        # {turn fingerprint: times journaled}: what compute_delta needs to emit each turn once.
        sa.Column("seen", sa.Text, nullable=False, server_default="{}"),
        sa.Column("exchanges", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_at", sa.String(32), nullable=False),
        sa.Column("last_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "state",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("state")
    op.drop_table("conversations")
    op.drop_table("exchanges")
