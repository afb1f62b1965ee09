"""The `state` table: small durable values keyed by name (cursors, offsets, last poll,
the mirror's backoff, a pause). Every key is declared here, once, so two parts of engram
cannot write the same key with different meanings.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from engram.store import schema

if TYPE_CHECKING:  # the ORM only inside write functions: status reads stay cheap
    from sqlalchemy.orm import Session

# The mitmweb watcher's cursor: the newest flow timestamp below every unhandled flow.
MITMWEB_CURSOR = "mitmweb:cursor"
# Set once the watcher has warned that mitmweb does not store streamed bodies.
MITMWEB_STREAM_WARNING = "mitmweb:warned-store-streamed-bodies"
# The daemon writes it after every poll (JSON); `engram status` shows it.
LAST_POLL = "watcher:last_poll"
# `engram pause`: paused periods, JSON (engram/store/pause.py).
PAUSE = "capture:pause"


def get(session: Session, key: str, default: str | None = None) -> str | None:
    from engram.store.models import StateRow

    row = session.get(StateRow, key)
    return row.value if row is not None else default


def put(session: Session, key: str, value: str) -> None:
    from engram.store.models import StateRow

    row = session.get(StateRow, key)
    if row is None:
        session.add(StateRow(key=key, value=value, updated_at=schema.now_iso()))
    else:
        row.value = value
        row.updated_at = schema.now_iso()


def put_many(session: Session, values: dict[str, str | None]) -> None:
    """Set several keys; None deletes a key."""
    from sqlalchemy import delete

    from engram.store.models import StateRow

    for key, value in values.items():
        if value is None:
            session.execute(delete(StateRow).where(StateRow.key == key))
        else:
            put(session, key, value)


def read(conn: sqlite3.Connection, key: str) -> str | None:
    """One value on the plain read connection (no ORM, no write lock)."""
    row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def read_prefix(conn: sqlite3.Connection, prefix: str) -> dict[str, str]:
    return dict(
        conn.execute(
            "SELECT key, value FROM state WHERE key LIKE ? ESCAPE '\\'",
            (prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
        )
    )
