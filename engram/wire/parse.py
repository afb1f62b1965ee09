"""One captured request/response pair -> one `Exchange`, whatever arrived.

`parse_exchange` is the single entry point every capture source calls, so it must
survive anything a source can hand it: unknown endpoints, non-JSON or binary bodies,
wrong field types, streams cut off mid-event, a missing response. It never raises: what
could not be read is described in `Exchange.error` and everything readable is kept.

Besides content it decides three things downstream relies on:

- kind: `internal` for engram's own calls (`X-Engram-Internal: 1`); `side-call` for
  token counting/compaction endpoints, agents' housekeeping prompts (titles, topic
  detection, conversation summaries, warmups, suggestion mode), one-token probes,
  Gemini CLI's schema-constrained checks (a JSON schema and no tools), Codex compaction
  sub-agents, and requests without any user turn; everything else is `conversation`.
- conversation: the agent's own session id where it sends one (headers, Anthropic
  `metadata.user_id`, `prompt_cache_key`, Code Assist `session_id`); otherwise a hash
  of the system prompt and the first real user message, with date/time lines removed
  so that a session crossing midnight keeps its key.
- project: the working directory the agent states (see `wire.text`), else the hint.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from engram.wire import anthropic, gemini, openai_chat, openai_responses
from engram.wire.common import ParsedRequest, ParsedResponse, decode_text, load_json, sniff
from engram.wire.detect import (
    endpoint_of,
    format_from_body,
    format_from_path,
    is_side_endpoint,
    provider_for,
)
from engram.wire.markers import INTERNAL_HEADER, is_internal
from engram.wire.model import Exchange, Format, Kind, RawRequest, RawResponse, Turn
from engram.wire.sse import JSONStream, decode_json_array, decode_sse
from engram.wire.text import is_preamble, project_from_system, user_words


class _Codec(NamedTuple):
    request: Callable[[dict[str, Any], str], ParsedRequest]
    response_json: Callable[[Any], ParsedResponse]
    response_stream: Callable[[JSONStream], ParsedResponse]


_CODECS: dict[Format, _Codec] = {
    fmt: _Codec(module.parse_request, module.parse_response_json, module.parse_response_stream)
    for fmt, module in (
        (Format.ANTHROPIC, anthropic),
        (Format.OPENAI_CHAT, openai_chat),
        (Format.OPENAI_RESPONSES, openai_responses),
        (Format.GEMINI, gemini),
    )
}

# Session ids agents send as headers, most specific first. Codex sends `thread-id` (its
# sub-agents share the parent's `session-id`); older Codex used `session_id` and
# `conversation_id`.
_SESSION_HEADERS = (
    "X-Claude-Code-Session-Id",
    "thread-id",
    "session-id",
    "session_id",
    "conversation_id",
)

_CLAUDE_AGENT_HEADER = "x-claude-code-agent-id"

# Phrases of agents' housekeeping prompts, looked for in the system prompt and the last
# user turn. Exact substrings, so a user quoting one mid-sentence is the only false hit.
_SIDE_CALL_MARKERS = (
    # Claude Code: topic/title detection, session titles, resume-list and compaction
    # summaries, and the first message of a compacted continuation.
    "Analyze if this message indicates a new conversation topic",
    "Generate a concise, sentence-case title",
    "word title for the following conversation",
    "Summarize this coding conversation",
    "Your task is to create a detailed summary of the conversation so far",
    "This session is being continued from a previous conversation",
    # Claude Code helpers: Bash permission prefixes, file paths touched, web search.
    "Your task is to process Bash commands that an AI coding agent wants to run",
    "Extract any file paths that this command reads or modifies",
    "You are an assistant for performing a web search tool use",
    # Codex compaction, Gemini CLI history compression.
    "You are performing a CONTEXT CHECKPOINT COMPACTION",
    "You are the component that summarizes internal chat history",
)
# Title generators of other agents; only short system prompts are searched, because a
# long agent prompt may well tell the model how to write a PR title.
_TITLE_REQUEST = re.compile(r"(?i)\b(?:generate|write|create|suggest)\b[^\n.]{0,80}\btitle\b")
_SHORT_SYSTEM = 4000
_SIDE_SUBAGENTS = frozenset({"compact", "memory_consolidation"})
_SSE_FIELDS = ("data:", "event:", ":", "id:", "retry:")
_VOLATILE_LINE = re.compile(
    r"(?i)today's date|current[ _]date|\bdate:|\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}:\d{2}"
    r"|x-anthropic-billing-header"
)


def parse_exchange(
    request: RawRequest,
    response: RawResponse | None,
    *,
    project_hint: str | None = None,
    request_json: dict[str, Any] | None = None,
) -> Exchange:
    """Normalise one captured LLM call. Never raises (see the module docstring).

    `request_json`: the request body already parsed (`json.loads(request.body)`), by a
    caller that needed it anyway (the proxy's recall step walks it for injection)."""
    exchange = Exchange()
    try:
        _parse_into(exchange, request, response, project_hint, request_json)
    except Exception as exc:  # the contract: one bad flow must never stop a capture
        exchange.error = f"parser failure: {type(exc).__name__}: {exc}"
    return exchange


def _parse_into(
    exchange: Exchange,
    request: RawRequest,
    response: RawResponse | None,
    project_hint: str | None,
    request_json: dict[str, Any] | None = None,
) -> None:
    host = request.host if isinstance(request.host, str) else ""
    exchange.host = host
    exchange.endpoint = endpoint_of(request.path if isinstance(request.path, str) else "")
    exchange.started_at = request.timestamp_start
    exchange.project = project_hint
    if response is not None:
        exchange.ended_at = response.timestamp_end
        exchange.status_code = response.status_code
    internal = is_internal(request.header(INTERNAL_HEADER))
    if internal:
        exchange.kind = Kind.INTERNAL

    fmt = format_from_path(exchange.endpoint)
    body, error = (
        (request_json, None) if request_json is not None else load_json(request.body, "request")
    )
    if fmt is Format.UNKNOWN and error is None:
        fmt = format_from_body(body, host)
    exchange.format = fmt
    exchange.provider = provider_for(host, fmt)
    if fmt is Format.UNKNOWN:
        exchange.error = error or "unrecognised request format"
        return
    codec = _CODECS[fmt]

    parsed: ParsedRequest | None = None
    if error is None and not isinstance(body, dict):
        error = "request body is not a JSON object"
    if error is None:
        parsed = codec.request(body, exchange.endpoint)
        exchange.system = parsed.system
        exchange.turns = parsed.turns
        exchange.model = parsed.model
        exchange.stream = parsed.stream

    reply = _parse_response(codec, fmt, response)
    if reply is not None:
        exchange.reply = reply.reply
        exchange.usage = reply.usage
        exchange.stop_reason = reply.stop_reason
        exchange.model = reply.model or exchange.model  # what answered, not the alias
        exchange.stream = exchange.stream or reply.stream
        exchange.truncated = reply.truncated
        if error is None and reply.error is not None:
            status = _status_error(exchange.status_code)
            error = reply.error if status is None else f"{status}: {reply.error}"
    exchange.error = error or _status_error(exchange.status_code)

    if parsed is None:  # nothing to hash: only a session header can name the conversation
        exchange.conversation = _header_session(request) or ""
        return
    if not internal:
        exchange.kind = _classify(request, exchange.endpoint, parsed)
    exchange.conversation = conversation_key(
        request, parsed.session_id, parsed.system, parsed.turns
    )
    exchange.project = find_project(parsed.system, parsed.turns) or project_hint


def _parse_response(
    codec: _Codec, fmt: Format, response: RawResponse | None
) -> ParsedResponse | None:
    if response is None or response.body is None:  # the source never had the body
        return None
    text = decode_text(response.body)
    shape = sniff(text)
    if shape == "empty":  # these APIs always answer something: it was cut before it began
        return ParsedResponse(truncated=True)
    if shape == "sse":
        if not _looks_like_sse(text):  # e.g. a proxy's HTML error page
            return ParsedResponse(error="response body is neither JSON nor a stream")
        return codec.response_stream(decode_sse(text))
    if shape == "array" and fmt is Format.GEMINI:
        return codec.response_stream(decode_json_array(text))
    body, error = load_json(text, "response")
    if error is not None:
        return ParsedResponse(error=error, truncated=True)
    return codec.response_json(body)


def _looks_like_sse(text: str) -> bool:
    # A stream cut after a few bytes still begins with (a prefix of) an SSE field name.
    head = text.lstrip()[:6]
    return any(head.startswith(field) or field.startswith(head) for field in _SSE_FIELDS)


def _status_error(status: int | None) -> str | None:
    return f"HTTP {status}" if isinstance(status, int) and status >= 400 else None


def _classify(request: RawRequest, endpoint: str, parsed: ParsedRequest) -> Kind:
    if is_side_endpoint(endpoint):
        return Kind.SIDE_CALL
    if (request.header("x-openai-subagent") or "").strip().lower() in _SIDE_SUBAGENTS:
        return Kind.SIDE_CALL
    if (request.header("x-openai-memgen-request") or "").strip().lower() == "true":
        return Kind.SIDE_CALL
    if parsed.max_tokens == 1 or parsed.structured_only:
        return Kind.SIDE_CALL
    users = [turn for turn in parsed.turns if turn.role == "user"]
    if not users:  # unless the earlier turns are stored server-side
        return Kind.CONVERSATION if parsed.stateful else Kind.SIDE_CALL
    system, last = parsed.system, users[-1].text
    if any(marker in system or marker in last for marker in _SIDE_CALL_MARKERS):
        return Kind.SIDE_CALL
    if len(system) < _SHORT_SYSTEM and _TITLE_REQUEST.search(system):
        return Kind.SIDE_CALL
    words = user_words(last)
    if words == "Warmup" or words.startswith("[SUGGESTION MODE:"):
        return Kind.SIDE_CALL
    return Kind.CONVERSATION


def conversation_key(
    request: RawRequest, session_id: str | None, system: str, turns: Sequence[Turn]
) -> str:
    """The agent's session id if it sent one, else a hash of how the conversation began."""
    header = _header_session(request)
    if header:
        return header
    if session_id and session_id.strip():
        return session_id.strip()
    material = _stable(system) + "\x00" + _stable(_opening_words(turns))
    digest = hashlib.sha256(material.encode("utf-8", errors="surrogatepass")).hexdigest()
    return "h-" + digest[:16]


def _header_session(request: RawRequest) -> str | None:
    for name in _SESSION_HEADERS:
        value = (request.header(name) or "").strip()
        if value:
            if name == _SESSION_HEADERS[0]:
                return subagent_key(value, request.header(_CLAUDE_AGENT_HEADER))
            return value
    return None


def subagent_key(session: str, agent: str | None) -> str:
    """A Claude Code subagent's own conversation key.

    Its requests carry the parent's session id plus `x-claude-code-agent-id`, and its
    transcript is `<session>/subagents/agent-<id>.jsonl`: keyed the same way by both
    doors, a sidechain is its own conversation and is still journaled once.
    """
    agent = (agent or "").strip()
    return f"{session}/agent-{agent}" if agent else session


def _opening_words(turns: Sequence[Turn]) -> str:
    """The first user message that is not harness setup (Codex, Gemini CLI send those)."""
    fallback = ""
    for turn in turns:
        if turn.role != "user" or not turn.text:
            continue
        words = user_words(turn.text)
        if words and not is_preamble(turn.text):
            return words
        fallback = fallback or words or turn.text
    return fallback


def _stable(text: str) -> str:
    if not _VOLATILE_LINE.search(text):
        return text
    return "\n".join(line for line in text.split("\n") if not _VOLATILE_LINE.search(line))


def find_project(system: str, turns: Sequence[Turn]) -> str | None:
    """The working directory stated in the system prompt or an opening harness message."""
    found = project_from_system(system)
    if found:
        return found
    for turn in turns[:8]:
        if turn.role == "system" or (turn.role == "user" and is_preamble(turn.text)):
            found = project_from_system(turn.text)
            if found:
                return found
    return None
