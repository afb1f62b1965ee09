"""Putting one agent request into the journal through the real front door, and reading
the journal back, for tests that start from captured traffic."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from engram import journaling
from engram.journaling import CapturePolicy
from engram.wire.model import RawRequest, RawResponse


def record_request(
    store: Any,
    key: str,
    messages: list[dict[str, Any]],
    *,
    reply: str = "Done.",
    project: str | None = "/home/dev/shop",
    session: str | None = None,
    policy: CapturePolicy | None = None,
) -> journaling.Recorded:
    """An Anthropic Messages request with `messages` (Claude Code's session header set to
    `session`, default `key`) and a reply `reply`, journaled as the proxy would."""
    body: dict[str, Any] = {"model": "claude-sonnet-5", "max_tokens": 100, "messages": messages}
    if project is not None:
        body["system"] = f"Primary working directory: {project}"
    answer = {
        "content": [{"type": "text", "text": reply}],
        "model": "x",
        "stop_reason": "end_turn",
    }
    with store.write() as s:
        return journaling.record(
            s,
            journaling.Capture(
                "proxy",
                key,
                RawRequest(
                    body=json.dumps(body).encode(),
                    path="/v1/messages",
                    host="api.anthropic.com",
                    headers=[("X-Claude-Code-Session-Id", session or key)],
                ),
                RawResponse(status_code=200, body=json.dumps(answer).encode()),
            ),
            policy or CapturePolicy(),
        )


def journal_rows(db: Path) -> list[dict[str, Any]]:
    """Every exchange row, oldest first ([] before the database exists)."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM exchanges ORDER BY id")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
