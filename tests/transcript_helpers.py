"""Helpers shared by the transcript tests: the recorded fixtures, journal reads, and
the wire shape Claude Code sends for a conversation (to capture it "through the proxy").
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from engram.wire.model import Turn

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
CLAUDE_SESSION = "660dce76-936b-4a67-aa91-bd9b54573eb5"
CLAUDE_SUBAGENT = f"{CLAUDE_SESSION}/agent-a3b53fa9d82f6425e"
PROJECT = "/home/dev/shop"


def install(agent: str, home: Path) -> list[Path]:
    """Put an agent's recorded sessions where it keeps them under `home`."""
    src = FIXTURES / agent
    dst = {
        "claude": home / ".claude" / "projects",
        "codex": home / ".codex" / "sessions" / "2026" / "12" / "06",
        "gemini": home / ".gemini" / "tmp",
        "qwen": home / ".qwen" / "projects" / "-home-dev-shop" / "chats",
    }[agent]
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return sorted(dst.rglob("*.jsonl"))


def claude_file(root: Path) -> Path:
    return next(root.rglob(f"{CLAUDE_SESSION}.jsonl"))


def rows(db: Path, source: str | None = None) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    sql = "SELECT * FROM exchanges" + (" WHERE source = ?" if source else "") + " ORDER BY id"
    out = [dict(r) for r in conn.execute(sql, (source,) if source else ())]
    conn.close()
    for row in out:
        row["turns"] = json.loads(row["turns"])
    return out


def turns_of(db: Path, conversation: str | None = None) -> list[tuple[str, str]]:
    """(role, text) of every journaled turn, in journal order."""
    return [
        (t["role"], t.get("text", ""))
        for r in rows(db)
        if conversation is None or r["conversation"] == conversation
        for t in r["turns"]
    ]


def journal_shape(db: Path) -> list[tuple[Any, ...]]:
    """What must be the same however a file was read: each row's key, turns, status."""
    return [
        (r["source_key"], r["conversation"], r["project"], r["status"], json.dumps(r["turns"]))
        for r in rows(db)
    ]


REMINDER = "<system-reminder>\nAttribution for commits...\n</system-reminder>\n"


def claude_request(session: str, history: list[Turn], agent_id: str | None = None) -> Any:
    """A request as Claude Code 2.1 sends it: a reminder in the first user message, a
    system-role message of context after it, tool results with reminders beside them."""
    from engram.wire.model import RawRequest

    messages: list[dict[str, Any]] = []
    for index, turn in enumerate(history):
        content: list[dict[str, Any]] = []
        if turn.role == "user":
            content += [
                {"type": "tool_result", "tool_use_id": r.call_id, "content": r.content}
                for r in turn.tool_results
            ]
            if index == 0:
                content.append({"type": "text", "text": REMINDER})
            if turn.text:
                content.append({"type": "text", "text": turn.text})
        else:
            if turn.text:
                content.append({"type": "text", "text": turn.text})
            content += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": json.loads(c.arguments)}
                for c in turn.tool_calls
            ]
        messages.append({"role": turn.role, "content": content})
        if index == 0:
            env = "# Environment\n - Primary working directory: " + PROJECT
            messages.append({"role": "system", "content": env})
    body = {
        "model": "claude-opus-5-5",
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": messages,
        "stream": False,
    }
    headers = [("X-Claude-Code-Session-Id", session), ("content-type", "application/json")]
    if agent_id:
        headers.append(("x-claude-code-agent-id", agent_id))
    return RawRequest(
        headers=headers,
        body=json.dumps(body).encode(),
        host="api.anthropic.com",
        path="/v1/messages?beta=true",
    )


def claude_response(reply: Turn) -> Any:
    from engram.wire.model import RawResponse

    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    content += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": json.loads(c.arguments)}
        for c in reply.tool_calls
    ]
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-5-5",
        "content": content,
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
    return RawResponse(
        headers=[("content-type", "application/json")],
        body=json.dumps(body).encode(),
        status_code=200,
    )
