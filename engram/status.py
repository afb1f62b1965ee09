"""`engram status`: what the daemon is doing right now, from the database alone.

Plain sqlite3 reads on indexed columns through the store's repositories: cheap enough
for `watch engram status`.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from engram.store import journal, outbox, pause, reader, review, runs, state, transcript_files


def gather(conn: sqlite3.Connection, *, mirror_enabled: bool = False) -> dict[str, Any]:
    """Everything `engram status` shows. `mirror_enabled` comes from the config: with the
    mirror off, its queue is not a backlog (it is replayed when the mirror is enabled)."""
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    paused = pause.read_current(conn)
    raw_poll = state.read(conn, state.LAST_POLL)
    by_status = journal.status_counts(conn)
    backlog = outbox.counts(conn)
    return {
        "paused": paused.to_dict() if paused is not None else None,
        "last_poll": json.loads(raw_poll) if raw_poll else None,
        "captured_today": journal.captured_since(conn, today),
        "captured_by_source": journal.by_source(conn),
        "pending": by_status.get("pending", 0),
        "failed": by_status.get("failed", 0),
        "failed_batches": journal.failed_batches(conn),
        "last_analyzer_run": runs.last(conn),
        "memories": reader.active_count(conn),
        "awaiting_review": review.count(conn),
        "memories_by_kind": reader.active_counts(conn, "kind"),
        "memories_by_project": reader.active_counts(conn, "scope"),
        "mirror": "enabled" if mirror_enabled else "disabled",
        "mirror_backlog": {k: n for k, n in backlog.items() if k != "done"}
        if mirror_enabled
        else None,
        "recall_today": journal.recall_outcomes_since(conn, today),
        "transcripts": [
            {"agent": agent, "files": files, "exchanges": pieces, "turns": turns}
            for agent, files, pieces, turns in transcript_files.totals(conn)
        ],
    }
