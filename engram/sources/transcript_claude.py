"""Claude Code transcripts: `~/.claude/projects/<cwd, / -> ->/<session id>.jsonl`.

Verified on Claude Code 2.1.332 (`claude -p`, `--resume`, tools, subagents, `/compact`):

- Every record has a `type`. `user` and `assistant` records carry `message` (the API
  message: `role`, `content` as a string or Anthropic content blocks), `sessionId`,
  `cwd`, `uuid`/`parentUuid`, `isSidechain`, `timestamp`. Everything else (`attachment`,
  `queue-operation`, `last-prompt`, `api-request*`, `cost-state`, `system`, ...) is the
  harness's bookkeeping and is not conversation.
- An assistant message with several content blocks (thinking, text, tool_use) is
  written as one record per block, all with the same `message.id`: they are merged back
  into one turn, as the next API request carries it.
- Consecutive user records (a prompt, a slash command and its output, a tool result
  and a message typed meanwhile) are one user turn on the wire: they are merged too, so
  that a turn read here and the same turn captured by the proxy have one fingerprint.
- `isMeta` records (command caveats), `isCompactSummary` records (a compaction summary
  restating the conversation so far), user records that are only harness markup (a
  slash command and its output, a background task's notice) and synthetic assistant
  messages (`model: "<synthetic>"`, API error notices) are not the user's or the
  model's words: skipped. (The fingerprint ignores that markup on the wire too.)
- Subagents: their own file `<session id>/subagents/agent-<id>.jsonl`, records with
  `isSidechain: true` and `agentId`. Their requests carry the parent's session id plus
  `x-claude-code-agent-id`, so both doors key them `<session id>/agent-<id>`
  (`wire.parse.subagent_key`): a sidechain is its own conversation. Older releases wrote
  sidechains into the session's own file; those records are keyed the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engram.sources.transcript_formats import (
    Draft,
    ParserBase,
    Span,
    clean_turn,
    line_key,
    timestamp,
)
from engram.wire.anthropic import content_builder, usage_of
from engram.wire.model import Format, Turn, Usage
from engram.wire.parse import subagent_key
from engram.wire.text import identity_text

AGENT = "claude"
# Records Claude Code writes between the block records of one assistant message (hook
# and tool progress): they do not end the message.
_INTERLEAVED = frozenset({"progress"})
_SYNTHETIC_MODEL = "<synthetic>"


class _Conversation:
    def __init__(self, key: str) -> None:
        self.key = key
        self.turns: list[Turn] = []  # closed turns of the piece being built
        self.user: list[Any] = []
        self.assistant: list[Any] = []
        self.assistant_id: str | None = None
        self.span = Span()
        self.end = 0
        self.project: str | None = None
        self.model: str | None = None
        self.usage = Usage()


_CONVERSATION_TYPE = re.compile(rb'"type": ?"(?:user|assistant)"')
_OTHER: dict[str, Any] = {"type": "other"}


def quick(line: bytes) -> Any:
    """A record without decoding it when it surely is not conversation: most of a Claude
    Code transcript by size is bookkeeping (request logs, prompt snapshots, listings),
    and decoding it was a quarter of a back-fill's time."""
    if _CONVERSATION_TYPE.search(line):
        return None
    return _OTHER


class ClaudeParser(ParserBase):
    format = Format.ANTHROPIC
    provider = "anthropic"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._conversations: dict[str, _Conversation] = {}
        self._cwd: str | None = None

    @property
    def open(self) -> bool:
        return any(c.assistant_id or c.user or c.turns for c in self._conversations.values())

    def feed(self, record: Any, line: bytes, end: int) -> list[Draft]:
        if not isinstance(record, dict):
            return []
        kind = record.get("type")
        message = record.get("message")
        if kind not in ("user", "assistant") or not isinstance(message, dict):
            return [] if kind in _INTERLEAVED else self._close_all()
        if kind == "user" and (
            record.get("isMeta") or record.get("isCompactSummary") or _markup_only(message)
        ):
            return self._close_all()
        if kind == "assistant" and (
            message.get("model") == _SYNTHETIC_MODEL or record.get("isApiErrorMessage")
        ):
            return self._close_all()
        cwd = record.get("cwd")
        if isinstance(cwd, str) and cwd != self._cwd:
            self._cwd = cwd
            self.note_project(cwd)
        if self._skipped:
            return []
        conv = self._conversation(record)
        if isinstance(cwd, str) and cwd:
            conv.project = cwd
        blocks = _blocks(message.get("content"))
        message_id = str(message.get("id") or record.get("uuid") or "")
        if kind == "assistant" and conv.assistant_id == message_id:
            done = self._close_all(keep=conv)
        else:
            done = self._close_all()
        if kind == "user":
            conv.user.extend(blocks)
        else:
            if conv.assistant_id is None:
                _close_user(conv)
                conv.assistant_id = message_id
            conv.assistant.extend(blocks)
            conv.model = str(message.get("model") or "") or conv.model
            conv.usage = usage_of(message.get("usage"))
        conv.span.add(line, timestamp(record.get("timestamp")))
        conv.end = end
        return done

    def flush(self) -> list[Draft]:
        done = self._close_all()
        for conv in self._conversations.values():
            _close_user(conv)
            if conv.turns:
                done.append(_draft(conv))
        return done

    def _conversation(self, record: dict[str, Any]) -> _Conversation:
        session = str(record.get("sessionId") or self.path.stem)
        if record.get("isSidechain"):
            agent = record.get("agentId")
            key = subagent_key(session, str(agent)) if agent else f"{session}/sidechain"
        else:
            key = session
        conv = self._conversations.get(key)
        if conv is None:
            conv = self._conversations[key] = _Conversation(key)
        return conv

    def _close_all(self, keep: _Conversation | None = None) -> list[Draft]:
        """A record that does not continue an open assistant message ends it."""
        done = []
        for conv in self._conversations.values():
            if conv is keep or conv.assistant_id is None:
                continue
            conv.turns.append(content_builder(conv.assistant).build("assistant"))
            conv.assistant, conv.assistant_id = [], None
            done.append(_draft(conv))
        return done


def _markup_only(message: dict[str, Any]) -> bool:
    """A user record that is only harness markup: a slash command and its output, a
    background task's notice. On the wire it is merged into the next user message, where
    the fingerprint ignores it too (`wire.text.identity_text`)."""
    blocks = _blocks(message.get("content"))
    if not blocks or any(not isinstance(b, dict) or b.get("type") != "text" for b in blocks):
        return False
    return not identity_text("\n".join(str(b.get("text") or "") for b in blocks))


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def _close_user(conv: _Conversation) -> None:
    if conv.user:
        conv.turns.append(clean_turn(content_builder(conv.user).build("user")))
        conv.user = []


def _draft(conv: _Conversation) -> Draft:
    span = conv.span
    draft = Draft(
        conversation=conv.key,
        turns=conv.turns,
        end=conv.end,
        key=line_key(AGENT, conv.key, span.last),
        project=conv.project,
        model=conv.model,
        usage=conv.usage,
        started_at=span.started_at,
        ended_at=span.ended_at,
        bytes=span.bytes,
    )
    conv.turns, conv.span, conv.usage = [], Span(), Usage()
    return draft


def sniff(record: dict[str, Any]) -> bool:
    """A Claude Code record: a `type` of its own and a session id, or an API message."""
    kind = record.get("type")
    if kind in ("queue-operation", "last-prompt", "file-history-snapshot", "summary"):
        return True
    message = record.get("message")
    if kind in ("user", "assistant", "attachment", "system") and "sessionId" in record:
        return not (isinstance(message, dict) and "parts" in message)  # Qwen: Gemini parts
    return False
