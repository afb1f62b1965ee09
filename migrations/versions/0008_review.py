"""Quarantine: memories with status `review`, and what the analyzer's guard did per run.

`memories.status` may now be `review` (held back until `engram review accept`); the
CHECK constraint is widened in place. SQLite cannot alter a constraint, and the usual
rebuild (copy the table, drop, rename) needs foreign keys switched off, which is
impossible inside the transaction Alembic runs in: other tables reference `memories`,
so dropping it fails on commit. A widened CHECK is the case SQLite's documentation
allows to be changed by editing the schema text ("Making Other Kinds Of Table Schema
Changes", https://www.sqlite.org/lang_altertable.html#otheralter): every existing row
satisfies the new constraint, the on-disk format does not change, and the schema
version is bumped so other connections reload it. An integrity check follows.

`analyzer_runs` gains three counters: commands dropped over the per-conversation cap
(`capped`), global memories stored in the project scope because the user's own words
did not carry them (`rescoped`) and memories held for review (`quarantined`).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import re
import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD = "'active','superseded','forgotten'"
NEW = "'active','superseded','forgotten','review'"
_CHECK = re.compile(r"(CONSTRAINT ck_memories_status CHECK \(status IN \()([^)]*)(\)\))")
COUNTERS = ("capped", "rescoped", "quarantined")


def _set_status_check(statuses: str) -> None:
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'memories'"
    ).scalar_one()
    new = _CHECK.sub(lambda m: m.group(1) + statuses + m.group(3), sql)
    if new == sql:
        if _CHECK.search(sql) is None:
            raise RuntimeError("memories has no ck_memories_status constraint to change")
        return
    raw = bind.connection.dbapi_connection
    defensive = getattr(sqlite3, "SQLITE_DBCONFIG_DEFENSIVE", None)
    was_defensive = False
    if defensive is not None and isinstance(raw, sqlite3.Connection):
        was_defensive = raw.getconfig(defensive)
        if was_defensive:  # a SQLite built defensive refuses writable_schema
            raw.setconfig(defensive, False)
    try:
        version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
        bind.exec_driver_sql("PRAGMA writable_schema = ON")
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'memories'",
            (new,),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    finally:
        if was_defensive and defensive is not None and isinstance(raw, sqlite3.Connection):
            raw.setconfig(defensive, True)
    problems = [r[0] for r in bind.exec_driver_sql("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise RuntimeError(f"database check failed after changing memories: {problems[:3]}")


def upgrade() -> None:
    _set_status_check(NEW)
    for name in COUNTERS:
        op.add_column(
            "analyzer_runs",
            sa.Column(name, sa.Integer, nullable=False, server_default=sa.text("0")),
        )


def downgrade() -> None:
    # Memories awaiting review were never in use: they leave as forgotten.
    op.execute("UPDATE memories SET status = 'forgotten' WHERE status = 'review'")
    _set_status_check(OLD)
    with op.batch_alter_table("analyzer_runs") as batch:
        for name in COUNTERS:
            batch.drop_column(name)
