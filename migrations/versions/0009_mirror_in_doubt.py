"""`mirror_ids.state` may be `in_doubt`: a forget or restore of the copy was sent and its
outcome is not recorded yet.

The sync job records what a call did only when its page commits. A sync killed (or left
without an answer) after MuninnDB applied a forget kept `active` on record; once the
memory was restored locally, the next sync took the copy for present and MuninnDB never
held it again. The job now marks such copies `in_doubt` before the calls and repeats
the call next time (engram/mirror/reconcile.py). SQLite cannot change a CHECK
constraint in place, so the table is rebuilt (one copy of `mirror_ids`).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OLD = "state IN ('none','active','forgotten')"
NEW = "state IN ('none','active','forgotten','in_doubt')"


def upgrade() -> None:
    with op.batch_alter_table("mirror_ids", recreate="always") as batch:
        batch.drop_constraint("ck_mirror_state", type_="check")
        batch.create_check_constraint("ck_mirror_state", NEW)


def downgrade() -> None:
    # For the older sync, an active copy of unknown text is forgotten if the memory is
    # not wanted and replaced by a new remember if it is: right either way.
    op.execute(
        "UPDATE mirror_ids SET state = 'active', content_hash = NULL WHERE state = 'in_doubt'"
    )
    with op.batch_alter_table("mirror_ids", recreate="always") as batch:
        batch.drop_constraint("ck_mirror_state", type_="check")
        batch.create_check_constraint("ck_mirror_state", OLD)
