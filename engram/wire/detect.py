"""Which wire format a captured request speaks: by path first, by body shape as a fallback.

Paths are matched by their ending, not their prefix, because agents reach the same APIs
through many bases: OpenAI-compatible servers without `/v1` (`/chat/completions`,
DashScope's `/compatible-mode/v1/...`), ChatGPT's `/backend-api/codex/responses`,
Anthropic-compatible gateways (`/anthropic/v1/messages`), Gemini's Code Assist
(`/v1internal:generateContent`). Token-counting and compaction endpoints are detected
as their format too, and flagged by `is_side_endpoint` so they are never conversation.
The body is consulted only when the path says nothing, e.g. a custom gateway route.
"""

from __future__ import annotations

from typing import Any

from engram.wire.common import as_dict, as_list, load_json
from engram.wire.model import Format, RawRequest

_GEMINI_METHODS = (":generatecontent", ":streamgeneratecontent", ":counttokens")
_SIDE_SUFFIXES = (
    "/messages/count_tokens",
    ":counttokens",
    "/responses/compact",
    "/responses/input_tokens",
)
_HOST_PROVIDERS = (
    ("anthropic.com", "anthropic"),
    ("openai.com", "openai"),
    ("chatgpt.com", "openai"),
    ("googleapis.com", "google"),
)
_FORMAT_PROVIDERS = {
    Format.ANTHROPIC: "anthropic",
    Format.OPENAI_CHAT: "openai",
    Format.OPENAI_RESPONSES: "openai",
    Format.GEMINI: "google",
}
_ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking"})


def endpoint_of(path: str) -> str:
    """The path without its query string (`/v1/messages?beta=true` -> `/v1/messages`)."""
    return path.split("?", 1)[0].split("#", 1)[0]


def format_from_path(endpoint: str) -> Format:
    path = endpoint.lower().rstrip("/")
    if path.endswith(_GEMINI_METHODS):
        return Format.GEMINI
    if path.endswith(("/messages", "/messages/count_tokens")) and "/threads/" not in path:
        return Format.ANTHROPIC
    if path.endswith("/chat/completions"):
        return Format.OPENAI_CHAT
    if path.endswith(("/responses", "/responses/compact", "/responses/input_tokens")):
        return Format.OPENAI_RESPONSES
    return Format.UNKNOWN


def is_side_endpoint(endpoint: str) -> bool:
    """Token counting and compaction: requests of a known format that are not conversation."""
    return endpoint.lower().rstrip("/").endswith(_SIDE_SUFFIXES)


def format_from_body(body: Any, host: str = "") -> Format:
    obj = as_dict(body)
    if isinstance(obj.get("contents"), list):
        return Format.GEMINI
    if isinstance(as_dict(obj.get("request")).get("contents"), list):
        return Format.GEMINI
    messages = obj.get("messages")
    if isinstance(messages, list):
        return Format.ANTHROPIC if _looks_anthropic(obj, messages, host) else Format.OPENAI_CHAT
    if "input" in obj and ("model" in obj or "instructions" in obj):
        return Format.OPENAI_RESPONSES
    return Format.UNKNOWN


def _looks_anthropic(obj: dict[str, Any], messages: list[Any], host: str) -> bool:
    # Chat Completions has no top-level `system` and no typed tool blocks in content.
    if "anthropic" in host.lower() or "system" in obj or "anthropic_version" in obj:
        return True
    for message in messages:
        for block in as_list(as_dict(message).get("content")):
            if as_dict(block).get("type") in _ANTHROPIC_BLOCKS:
                return True
    return False


def detect_format(request: RawRequest) -> Format:
    """The request's format; UNKNOWN for anything unrecognised. Never raises."""
    try:
        fmt = format_from_path(endpoint_of(request.path or ""))
        if fmt is not Format.UNKNOWN:
            return fmt
        body, error = load_json(request.body, "request")
        return Format.UNKNOWN if error else format_from_body(body, request.host or "")
    except Exception:  # the contract: classification never breaks a capture
        return Format.UNKNOWN


def provider_for(host: str, fmt: Format) -> str:
    """The vendor behind a host; for other hosts, the API family the format belongs to."""
    lowered = host.lower()
    for suffix, provider in _HOST_PROVIDERS:
        if lowered == suffix or lowered.endswith("." + suffix):
            return provider
    return _FORMAT_PROVIDERS.get(fmt, "")


def completion_format(method: str, path: str, *, internal: bool = False) -> Format | None:
    """The format of a request that should get memory: a POST to a completion endpoint,
    not a side call (token counting, compaction), not engram's own traffic."""
    if method.upper() != "POST" or internal:
        return None
    endpoint = endpoint_of(path)
    fmt = format_from_path(endpoint)
    if fmt is Format.UNKNOWN or is_side_endpoint(endpoint):
        return None
    return fmt
