"""What the four format parsers share: tolerant accessors, text assembly, usage.

Bodies come from the wire and from agents we do not control, so every accessor accepts
any JSON value and degrades to an empty one instead of raising; the parsers can then be
written as if the shape were right and still never fail on a wrong one.

Token usage is normalised to one meaning across providers: `input_tokens` is the prompt
tokens NOT served from a cache, so `input + cache_read + cache_creation` is the whole
prompt for every format (Anthropic reports it that way; OpenAI and Gemini count cached
tokens inside the prompt total, so they are subtracted). `output_tokens` includes
reasoning/thinking tokens, as all three bill them as output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engram.wire.model import ToolCall, ToolResult, Turn, Usage


@dataclass(slots=True)
class ParsedRequest:
    """The format-independent content of one request body."""

    system: str = ""
    turns: list[Turn] = field(default_factory=list)
    model: str | None = None
    stream: bool = False
    session_id: str | None = None  # a conversation id carried inside the body itself
    max_tokens: int | None = None
    structured_only: bool = False  # wants a schema-constrained reply and offers no tools
    stateful: bool = False  # the history lives server-side (Responses previous_response_id)


@dataclass(slots=True)
class ParsedResponse:
    """The format-independent content of one response body, JSON or streamed."""

    reply: Turn | None = None
    usage: Usage = field(default_factory=Usage)
    stop_reason: str | None = None
    model: str | None = None
    stream: bool = False
    truncated: bool = False
    error: str | None = None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    """Text of a field that should be a string; numbers are tolerated, the rest is ''."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return ""


def opt_str(value: Any) -> str | None:
    return as_str(value) or None


def as_int(value: Any) -> int:
    """A non-negative count; anything unusable counts as 0 rather than failing a parse."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and math.isfinite(value):
        return max(int(value), 0)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    return as_int(value) if isinstance(value, int | float | str) else None


def canonical_json(value: Any) -> str:
    """One text per JSON value, so the same tool input always gives the same string."""
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def canonical_arguments(value: Any) -> str:
    """Canonical JSON text of tool arguments, whether given as an object or as JSON text.

    Text that is not JSON (a custom tool's free-form input, or arguments cut off by a
    truncated stream) is kept verbatim: it is still the best record of the call.
    Absent or blank arguments mean "no input", which Anthropic spells `{}`.
    """
    if value is None:
        return "{}"
    if isinstance(value, str):
        if not value.strip():
            return "{}"
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return value
    return canonical_json(value)


def join_text(parts: Iterable[str], sep: str = "\n\n") -> str:
    return sep.join(part for part in parts if part)


def placeholder(kind: str, name: str = "") -> str:
    """Stands in for non-text content: its existence matters, its bytes never do."""
    return f"[{kind}: {name}]" if name else f"[{kind}]"


class TurnBuilder:
    """Collects the pieces of one message before it is frozen into a `Turn`."""

    __slots__ = ("calls", "results", "texts", "thinking")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[ToolCall] = []
        self.results: list[ToolResult] = []
        self.thinking: list[str] = []

    def is_empty(self) -> bool:
        return not (self.texts or self.calls or self.results or self.thinking)

    def build(self, role: str, sep: str = "\n\n") -> Turn:
        return Turn(
            role=role,
            text=join_text(self.texts, sep),
            tool_calls=tuple(self.calls),
            tool_results=tuple(self.results),
            thinking=join_text(self.thinking, sep),
        )


def decode_text(body: bytes | str | None) -> str:
    """Body bytes as text; bad UTF-8 is replaced rather than rejected."""
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    text = body.decode("utf-8", errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def load_json(body: bytes | str | None, what: str) -> tuple[Any, str | None]:
    """Parse a body once; on failure return (None, a message naming `what` was wrong)."""
    if body is None or not body or body.isspace():
        return None, f"{what} body is empty"
    try:
        return json.loads(body), None
    except RecursionError:
        return None, f"{what} body is nested too deeply"
    except ValueError:  # includes UnicodeDecodeError: retry with bad bytes replaced
        pass
    try:
        return json.loads(decode_text(body)), None
    except RecursionError:
        return None, f"{what} body is nested too deeply"
    except ValueError:
        return None, f"{what} body is not JSON"


def sniff(text: str) -> str:
    """Which shape a response body has: 'json', 'array', 'sse' or 'empty'."""
    stripped = text.lstrip()
    if not stripped:
        return "empty"
    first = stripped[0]
    if first == "{":
        return "json"
    if first == "[":
        return "array"
    return "sse"


def error_text(value: Any) -> str | None:
    """The message of a provider error object in any of the three providers' shapes."""
    if isinstance(value, list):
        value = value[0] if value else None
    obj = as_dict(value)
    err = obj.get("error")
    if isinstance(err, str):
        return err
    err = as_dict(err)
    if not err:
        return None
    kind = as_str(err.get("type")) or as_str(err.get("status")) or as_str(err.get("code"))
    message = as_str(err.get("message"))
    if kind and message:
        return f"{kind}: {message}"
    return message or kind or "error"


def make_usage(
    prompt: Any, output: Any, cached: Any = 0, created: Any = 0, *, prompt_includes_cache: bool
) -> Usage:
    """Usage in engram's meaning (see the module docstring) from a provider's counts."""
    cache_read = as_int(cached)
    input_tokens = as_int(prompt)
    if prompt_includes_cache:
        input_tokens = max(input_tokens - cache_read, 0)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=as_int(output),
        cache_read_tokens=cache_read,
        cache_creation_tokens=as_int(created),
    )


def first_dict(items: Any) -> dict[str, Any]:
    """The first element of a list when it is an object (choices[0], candidates[0])."""
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return {}
