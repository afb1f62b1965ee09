"""The recall decision of every journaled exchange: `exchanges.recall`.

JSON (engram/recall/audit.py): the memories injected with their scores, or why none
were (`below gate`, `no candidates`, `budget exceeded (N ms)`, `warming up`,
`disabled`, `no user turn`, ...). NULL for exchanges captured by a source that does
not recall (the mitmweb watcher, flow files) and for rows older than this migration.
"Today's injection rate" (`engram status`) uses the existing captured_at index.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: SQLite adds it without rewriting the table.
    op.add_column("exchanges", sa.Column("recall", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exchanges") as batch:
        batch.drop_column("recall")
