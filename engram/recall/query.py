"""What to search memory for: the user's latest request, not the whole conversation.

A request body carries the whole history; what decides which notes help *now* is the
latest thing the user typed. So the query is the latest user turn that has words of the
user's own, after harness wrappers (`<system-reminder>`, `<environment_context>`, ...)
and engram's own block are stripped (`wire.text.user_words`) and tool results are
ignored (they live in `Turn.tool_results`, never in the text). Harness preambles
(Codex's AGENTS.md message, Gemini CLI's setup message) are not requests and are skipped.

Fallbacks:
- a very short turn ("yes", "go ahead", "do it": fewer than two topic words) says
  nothing on its own, so the query is the previous user turn that does say something
  (the request the confirmation belongs to); if there is none, the assistant turn it
  answers, cut to a few hundred characters;
- no user words at all: the text of the last few user and assistant turns.

Tool loops send the same history plus tool results many times per user turn; the
query is then unchanged, and `QueryCache` lets the service hand back the previous
result (same block, byte for byte, which also keeps the provider's prompt cache warm).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engram.recall.hybrid import query_terms
from engram.wire.model import Turn
from engram.wire.text import is_preamble, user_words

MAX_QUERY_CHARS = 2000
CONTEXT_CHARS = 400
FALLBACK_TURNS = 3


def _clip(text: str, limit: int) -> str:
    """Head and tail of a long text: requests put the ask first or last, logs in between."""
    text = text.strip()
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n…\n" + text[-half:]


def _words(turn: Turn) -> str:
    """The words a turn contributes: none for system prompts (OpenAI sends them as turns)
    and tool output, which say nothing about what the user wants now. A harness preamble
    contributes what is left once its blocks are removed: Gemini CLI 0.61 sends its
    `<session_context>` and the user's prompt as one user turn."""
    if turn.role not in ("user", "assistant") or not turn.text:
        return ""
    words = user_words(turn.text)
    if turn.role == "user" and is_preamble(turn.text) and (not words or is_preamble(words)):
        return ""
    return words


def query_from_turns(turns: Sequence[Turn], max_chars: int = MAX_QUERY_CHARS) -> str:
    """The recall query for a conversation whose last request holds `turns`."""
    latest: int | None = None
    for i in range(len(turns) - 1, -1, -1):
        turn = turns[i]
        if turn.role != "user":
            continue
        words = _words(turn)
        if not words:
            continue  # a tool-result turn or a bare harness message: look further back
        if len(query_terms(words)) >= 2:
            return _clip(words, max_chars)
        if latest is None:
            latest = i  # a bare confirmation: find the request it belongs to
    if latest is not None:
        for earlier in reversed(turns[:latest]):
            text = _words(earlier)
            if text and earlier.role == "assistant":
                return _clip(text, CONTEXT_CHARS)
        return _clip(_words(turns[latest]), max_chars)
    recent = [w for w in (_words(t) for t in turns[-FALLBACK_TURNS * 2 :]) if w]
    return _clip("\n".join(recent[-FALLBACK_TURNS:]), max_chars)


def query_from_exchange(exchange: Any) -> str:
    """`query_from_turns` of a parsed request (`wire.model.Exchange`)."""
    return query_from_turns(exchange.turns)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    key: tuple[str | None, str]  # (project, query)
    generation: int  # the memory index generation the result was computed at
    result: Any


class QueryCache:
    """The last query and result per conversation, for the most recent conversations."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, conversation: str, key: tuple[str | None, str], generation: int) -> Any | None:
        """The cached result if this conversation asked the same thing at this generation."""
        with self._lock:
            entry = self._entries.get(conversation)
            if entry is None or entry.key != key or entry.generation != generation:
                return None
            self._entries.move_to_end(conversation)
            return entry.result

    def put(
        self, conversation: str, key: tuple[str | None, str], generation: int, result: Any
    ) -> None:
        with self._lock:
            self._entries[conversation] = CacheEntry(key, generation, result)
            self._entries.move_to_end(conversation)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
