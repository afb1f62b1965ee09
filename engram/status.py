"""`engram status`: what the daemon is doing right now, from the database alone.

Plain sqlite3 reads on indexed columns: cheap enough for `watch engram status`.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

LAST_POLL_KEY = "watcher:last_poll"  # the watcher daemon writes it after every poll


def _one(conn: sqlite3.Connection, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def gather(conn: sqlite3.Connection) -> dict[str, Any]:
    from engram.store import privacy

    pause = privacy.read_current(conn)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    raw_poll = _one(conn, "SELECT value FROM state WHERE key = ?", LAST_POLL_KEY)
    last_poll = json.loads(raw_poll) if raw_poll else None
    run = conn.execute(
        "SELECT started_at, backend, model, status, added, superseded, forgotten, error, "
        "cost_usd FROM analyzer_runs ORDER BY id DESC LIMIT 1"
    ).fetchone()
    data: dict[str, Any] = {
        "paused": pause.to_dict() if pause is not None else None,
        "last_poll": last_poll,
        "captured_today": _one(
            conn, "SELECT count(*) FROM exchanges WHERE captured_at >= ?", today
        ),
        "pending": _one(conn, "SELECT count(*) FROM exchanges WHERE status = 'pending'"),
        "failed": _one(conn, "SELECT count(*) FROM exchanges WHERE status = 'failed'"),
        "failed_batches": _one(
            conn,
            "SELECT count(*) FROM exchanges WHERE status = 'failed' AND analysis_error IS NOT NULL",
        ),
        "last_analyzer_run": dict(
            zip(
                (
                    "started_at",
                    "backend",
                    "model",
                    "status",
                    "added",
                    "superseded",
                    "forgotten",
                    "error",
                    "cost_usd",
                ),
                run,
                strict=True,
            )
        )
        if run
        else None,
        "memories": _one(conn, "SELECT count(*) FROM memories WHERE status = 'active'"),
        "awaiting_review": _one(conn, "SELECT count(*) FROM memories WHERE status = 'review'"),
        "memories_by_kind": {
            k: n
            for k, n in conn.execute(
                "SELECT kind, count(*) FROM memories WHERE status = 'active' GROUP BY kind "
                "ORDER BY 2 DESC"
            )
        },
        "memories_by_project": {
            k: n
            for k, n in conn.execute(
                "SELECT scope, count(*) FROM memories WHERE status = 'active' GROUP BY scope "
                "ORDER BY 2 DESC"
            )
        },
        "mirror_backlog": None,
    }
    if "mirror_outbox" in _tables(conn):
        data["mirror_backlog"] = {
            s: n
            for s, n in conn.execute(
                "SELECT status, count(*) FROM mirror_outbox WHERE status != 'done' GROUP BY status"
            )
        }
    return data
