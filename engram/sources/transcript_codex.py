"""Codex rollouts: `~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl`
(`$CODEX_HOME` moves `~/.codex`; `codex archive` moves files to `archived_sessions/`).

Verified on Codex CLI 0.171.0 (`codex exec`, `codex exec resume`):

- Each line is `{"timestamp", "type", "payload"}`. `session_meta` (first) holds the
  thread `id` and `cwd`; `turn_context` the model and the cwd of each turn.
- `response_item` payloads are the Responses API items exactly as the next request's
  `input` carries them (messages with roles developer/user/assistant, `reasoning`,
  `function_call`/`custom_tool_call` and their `*_output`s). They are grouped into
  turns by the same code that reads a captured request (`wire.openai_responses`), so a
  turn read here and the same turn captured by the proxy have one fingerprint.
- The thread id is the `thread-id` header of the API requests: the proxy's
  conversation key. Subagents get their own thread (their own rollout).
- `event_msg` lines repeat the items for the UI (`user_message`, `agent_message`) and
  report progress; `token_count` follows each model response and carries its usage.

Developer messages (instructions) and the harness's opening user messages
(`<environment_context>`, AGENTS.md) are context, not conversation: left out.
"""

from __future__ import annotations

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
from engram.wire.common import as_dict, make_usage
from engram.wire.model import Format, Turn, Usage
from engram.wire.openai_responses import parse_request
from engram.wire.text import is_preamble

AGENT = "codex"
# Events written after a model response is complete (or a turn ends): they close it.
_CLOSING_EVENTS = frozenset(
    {"token_count", "task_complete", "turn_aborted", "task_started", "user_message"}
)


def _is_assistant_item(item: dict[str, Any]) -> bool:
    kind = str(item.get("type") or ("message" if "role" in item else ""))
    if kind == "message":
        return item.get("role") == "assistant"
    return kind == "reasoning" or (kind.endswith("_call") and not kind.endswith("_output"))


class CodexParser(ParserBase):
    format = Format.OPENAI_RESPONSES
    provider = "openai"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.conversation = _thread_from_name(path)
        self.project: str | None = None
        self.model: str | None = None
        self._items: list[dict[str, Any]] = []
        self._answered = False  # the buffered items end with a model response
        self._usage = Usage()
        self._span = Span()
        self._end = 0

    @property
    def open(self) -> bool:
        return bool(self._items) and not self._skipped

    def feed(self, record: Any, line: bytes, end: int) -> list[Draft]:
        if not isinstance(record, dict):
            return []
        kind = record.get("type")
        payload = as_dict(record.get("payload"))
        if kind == "session_meta":
            self.conversation = str(payload.get("id") or self.conversation)
            self._set_project(payload.get("cwd"))
            return []
        if kind == "turn_context":
            self._set_project(payload.get("cwd"))
            self.model = str(payload.get("model") or "") or self.model
            return self._close()
        if kind == "token_usage_record":  # 0.171: the usage of the response just done
            self._take_usage(payload.get("usage"))
            return self._close()
        if kind == "event_msg":
            event = payload.get("type")
            if event == "token_count":
                self._take_usage(as_dict(payload.get("info")).get("last_token_usage"))
            return self._close() if event in _CLOSING_EVENTS else []
        if kind != "response_item" or not payload:
            return self._close() if kind == "compacted" else []
        if self._skipped:
            return []
        assistant = _is_assistant_item(payload)
        done = [] if assistant else self._close()
        self._items.append(payload)
        self._answered = assistant
        self._span.add(line, timestamp(record.get("timestamp")))
        self._end = end
        return done

    def flush(self) -> list[Draft]:
        self._answered = True
        return self._close()

    def _take_usage(self, usage: Any) -> None:
        u = as_dict(usage)
        if u and self._answered:
            self._usage = make_usage(
                u.get("input_tokens"),
                u.get("output_tokens"),
                u.get("cached_input_tokens"),
                prompt_includes_cache=True,
            )

    def _set_project(self, cwd: Any) -> None:
        if isinstance(cwd, str) and cwd:
            self.project = cwd
            self.note_project(cwd)

    def _close(self) -> list[Draft]:
        if not self._answered or not self._items:
            return []
        turns = [clean_turn(t) for t in parse_request({"input": self._items}).turns]
        turns = [t for t in turns if _conversational(t)]
        span = self._span
        draft = Draft(
            conversation=self.conversation,
            turns=turns,
            end=self._end,
            key=line_key(AGENT, self.conversation, span.last),
            project=self.project,
            model=self.model,
            usage=self._usage,
            started_at=span.started_at,
            ended_at=span.ended_at,
            bytes=span.bytes,
        )
        self._items, self._answered, self._span, self._usage = [], False, Span(), Usage()
        return [draft] if turns and not self._skipped else []


def _conversational(turn: Turn) -> bool:
    return turn.role != "system" and not (turn.role == "user" and is_preamble(turn.text))


def _thread_from_name(path: Path) -> str:
    """`rollout-2026-12-06T11-11-20-<uuid>.jsonl` -> the uuid (until session_meta says)."""
    stem = path.stem
    parts = stem.split("-")
    return "-".join(parts[-5:]) if len(parts) >= 6 else stem


def sniff(record: dict[str, Any]) -> bool:
    return record.get("type") in (
        "session_meta",
        "response_item",
        "event_msg",
        "turn_context",
    ) and isinstance(record.get("payload"), dict)
