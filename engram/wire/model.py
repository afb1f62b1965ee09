"""The normalized shapes every capture path produces and every consumer reads.

One raw HTTP request/response pair of any supported LLM API becomes one `Exchange`.
Everything downstream (journal, conversation deltas, analyzer, recall queries) works
on these types only, so a new wire format means a new parser and nothing else.
These are plain frozen dataclasses: cheap to build, hashable where it matters, and
serialisable with `to_dict`/`from_dict` for the journal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Format(StrEnum):
    """The wire format of a request, which decides how it is parsed and injected."""

    ANTHROPIC = "anthropic"  # /v1/messages
    OPENAI_CHAT = "openai-chat"  # /v1/chat/completions
    OPENAI_RESPONSES = "openai-responses"  # /v1/responses
    GEMINI = "gemini"  # :generateContent / :streamGenerateContent (+ Code Assist)
    UNKNOWN = "unknown"


class Kind(StrEnum):
    """Whether an exchange is user conversation worth analysing."""

    CONVERSATION = "conversation"
    SIDE_CALL = "side-call"  # count_tokens, titles, compaction summaries
    INTERNAL = "internal"  # engram's own traffic (X-Engram-Internal: 1)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool invocation by the assistant; `arguments` is the JSON text of its input."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The output of a tool call as fed back to the model, flattened to text."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation.

    `role` is one of "system", "user", "assistant", "tool". `text` is the visible text
    with non-text parts replaced by placeholders such as "[image]"; `<system-reminder>`
    blocks are kept here verbatim (see `wire.text.user_words` to drop them) so that a
    turn's fingerprint is stable. `thinking` is kept apart because agents edit or clear
    it in later requests and it must not make an old turn look new.
    """

    role: str
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    thinking: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0


@dataclass(slots=True)
class RawMessage:
    """One side of an HTTP exchange as any source sees it (mitmweb, proxy, flow file).

    `headers` keep their order and case; lookups through `header()` ignore case.
    `body` is the decoded body (content-encoding already removed) or None if the
    source never had it (e.g. a streamed body mitmweb did not store).
    """

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    timestamp_start: float | None = None
    timestamp_end: float | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default


@dataclass(slots=True)
class RawRequest(RawMessage):
    method: str = "POST"
    scheme: str = "https"
    host: str = ""  # the API host (mitmweb's pretty_host), no port
    port: int | None = None
    path: str = "/"  # includes the query string, as mitmweb reports it
    # What engram's recall decided for this request (injected memories or why none),
    # set by the proxy and the addon and journaled with the exchange; never sent.
    recall: dict[str, Any] | None = None


@dataclass(slots=True)
class RawResponse(RawMessage):
    status_code: int = 0


@dataclass(slots=True)
class Exchange:
    """One LLM API call, normalized.

    `turns` is the request's full history in order (system prompt excluded: it is in
    `system`); `reply` is the assistant's answer assembled from the response, or None
    when there was no usable response. `error` describes why parsing could not complete
    (unknown format, non-JSON body, ...): an Exchange is always returned, never raised.
    """

    format: Format = Format.UNKNOWN
    provider: str = ""  # "anthropic" | "openai" | "google" | ""
    host: str = ""
    endpoint: str = ""  # path without the query string
    model: str | None = None
    kind: Kind = Kind.CONVERSATION
    conversation: str = ""  # the conversation key (see wire.conversation_key)
    project: str | None = None
    system: str = ""  # system prompt text, injected engram block removed
    turns: list[Turn] = field(default_factory=list)
    reply: Turn | None = None
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None
    status_code: int | None = None
    stream: bool = False
    truncated: bool = False
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["format"] = str(self.format)
        data["kind"] = str(self.kind)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Exchange:
        def turn(d: dict[str, Any]) -> Turn:
            return Turn(
                role=d["role"],
                text=d.get("text", ""),
                tool_calls=tuple(ToolCall(**c) for c in d.get("tool_calls", ())),
                tool_results=tuple(ToolResult(**r) for r in d.get("tool_results", ())),
                thinking=d.get("thinking", ""),
            )

        values = dict(data)
        values["format"] = Format(values.get("format", "unknown"))
        values["kind"] = Kind(values.get("kind", "conversation"))
        values["turns"] = [turn(t) for t in values.get("turns", [])]
        values["reply"] = turn(values["reply"]) if values.get("reply") else None
        values["usage"] = Usage(**values.get("usage", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
