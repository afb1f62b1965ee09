"""Script steps and provider wire shapes for the loopback LLM stub (`llm_stub`).

Kept apart from the server so that the shapes can be read (and checked against the
providers' documentation) without the threading and aiohttp plumbing around them.
Every renderer is a pure function of one `Turn`; the stub only frames and flushes.
A `Reply` is provider-neutral: its `stop_reason` uses Anthropic's words (`end_turn`,
`tool_use`, `max_tokens`, `stop_sequence`) and is mapped per provider; other values
pass through unchanged so a test can provoke rare ones (`refusal`, `content_filter`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolUse:
    """One tool call in a reply; `id` is generated per provider when not given."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """A model answer. `usage=(input, output)` overrides the estimated token counts;
    `thinking` becomes a thinking block (Anthropic) or a thought part (Gemini)."""

    text: str = ""
    tool_calls: Sequence[ToolUse] = ()
    stop_reason: str | None = None
    usage: tuple[int, int] | None = None
    thinking: str = ""
    model: str | None = None


@dataclass(frozen=True)
class Fail:
    """An HTTP error before any body. `body=None` renders the provider's error shape."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: str | bytes | dict[str, Any] | None = None
    message: str = "stub failure"


@dataclass(frozen=True)
class Delay:
    """Wait before answering (headers included): for timeout and time-to-first-byte tests.
    `then=None` plays the default echo reply."""

    seconds: float
    then: Step | None = None


@dataclass(frozen=True)
class CutStream:
    """Send the first `after_events` stream events of `reply`, then drop the connection
    without ending the body. A non-streaming request gets half its JSON body."""

    after_events: int = 1
    reply: Reply | None = None


@dataclass(frozen=True)
class Empty:
    """A 200 with the right Content-Type and a zero-length body (no events at all)."""


type Step = Reply | Fail | Delay | CutStream | Empty
# One step for every request; a list, consumed in order with its last step repeating; or
# a function of the request (returning None plays the default echo reply). The function
# runs on the server's event loop, so it must not block.
type Script = Step | Sequence[Step] | Callable[[RecordedRequest], Step | None]


@dataclass
class RecordedRequest:
    """One request as received; `api` names the route it matched (see `llm_stub`)."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    json: Any | None
    api: str = "unknown"
    received_at: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        """First value of a header, matched case-insensitively as HTTP requires."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def model(self) -> str | None:
        """The model asked for: a body field, or the `/models/{model}:` path segment."""
        body = self.json if isinstance(self.json, dict) else {}
        if isinstance(body.get("model"), str):
            return body["model"]
        found = re.search(r"/models/([^/:?]+):", self.path)
        return found.group(1) if found else None


@dataclass
class Turn:
    """Everything a renderer needs for one reply; `new_id(prefix)` is unique per stub."""

    model: str
    reply: Reply
    input_tokens: int
    output_tokens: int
    new_id: Callable[[str], str]

    @property
    def stop(self) -> str:
        """The neutral stop reason, defaulting the way the real APIs do."""
        if self.reply.stop_reason:
            return self.reply.stop_reason
        return "tool_use" if self.reply.tool_calls else "end_turn"


# --- helpers -----------------------------------------------------------------------------

_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)


def words(text: str) -> list[str]:
    """Text split into word-sized deltas that concatenate back to exactly `text`."""
    return re.findall(r"\s*\S+|\s+", text)


def pieces(text: str, count: int = 4) -> list[str]:
    """A string cut into `count` roughly equal parts (tool arguments arrive this way)."""
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def estimate_output(reply: Reply) -> int:
    """Output tokens ~ words, plus a quarter of each tool call's JSON arguments."""
    count = len(reply.text.split()) + len(reply.thinking.split())
    count += sum(max(1, len(json.dumps(t.input)) // 4) for t in reply.tool_calls)
    return max(1, count)


def _texts(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    if isinstance(node, dict):
        found: list[str] = []
        for key in ("text", "content", "parts", "output"):
            if key in node:
                found += _texts(node[key])
        return found
    return []


def last_user_text(body: Any) -> str:
    """Visible text of the last user turn in any of the four request formats."""
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("request"), dict):  # Code Assist wraps the Gemini request
        body = body["request"]
    turns = body.get("messages") or body.get("contents") or body.get("input") or []
    if isinstance(turns, str):
        return turns
    users = [t for t in turns if isinstance(t, dict) and t.get("role") == "user"]
    text = " ".join(_texts(users[-1])) if users else ""
    return " ".join(_REMINDER.sub(" ", text).split())


def default_reply(body: Any) -> Reply:
    """Deterministic, and different for every turn of a conversation. A Gemini request
    that asks for JSON with a schema (Gemini CLI's model router does) gets a minimal
    object that fits the schema: a client that validates would otherwise retry for
    minutes."""
    schema = response_schema(body)
    if schema is not None:
        return Reply(text=json.dumps(_schema_example(schema)))
    return Reply(text=f"ok: {last_user_text(body)[:40]}".rstrip())


def response_schema(body: Any) -> Any:
    """The JSON schema a Gemini request constrains its answer to, else None (a test's
    script lets the stand-in answer those itself)."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("request"), dict):
        body = body["request"]
    config = body.get("generationConfig")
    if not isinstance(config, dict) or config.get("responseMimeType") != "application/json":
        return None
    return config.get("responseJsonSchema") or config.get("responseSchema") or {}


def _schema_example(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: _schema_example(v) for k, v in props.items()}
    if kind == "array":
        return [_schema_example(schema.get("items"))]
    return {"string": "stub", "integer": 1, "number": 1, "boolean": False}.get(kind)


def sse(data: Any, event: str | None = None, eol: str = "\n") -> bytes:
    """One server-sent event; `data` is JSON-encoded unless already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}{eol}" if event else ""
    return f"{head}data: {payload}{eol}{eol}".encode()


# --- Anthropic Messages ------------------------------------------------------------------


def _anthropic_usage(turn: Turn, output: int) -> dict[str, Any]:
    return {
        "input_tokens": turn.input_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _anthropic_tool_id(turn: Turn, call: ToolUse) -> str:
    return call.id or turn.new_id("toolu_stub")


def anthropic_json(turn: Turn) -> dict[str, Any]:
    """A complete `message` object, as `POST /v1/messages` returns without `stream`."""
    content: list[dict[str, Any]] = []
    if turn.reply.thinking:
        content.append(
            {"type": "thinking", "thinking": turn.reply.thinking, "signature": "stub-signature"}
        )
    if turn.reply.text:
        content.append({"type": "text", "text": turn.reply.text})
    content += [
        {"type": "tool_use", "id": _anthropic_tool_id(turn, c), "name": c.name, "input": c.input}
        for c in turn.reply.tool_calls
    ]
    return {
        "id": turn.new_id("msg_stub"),
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": content,
        "stop_reason": turn.stop,
        "stop_sequence": None,
        "usage": _anthropic_usage(turn, turn.output_tokens),
    }


def anthropic_events(turn: Turn) -> list[bytes]:
    """message_start, ping, one start/delta.../stop run per block, message_delta, stop."""
    message = anthropic_json(turn)
    blocks = message["content"]
    start = {**message, "content": [], "stop_reason": None, "usage": _anthropic_usage(turn, 1)}
    out = [
        sse({"type": "message_start", "message": start}, "message_start"),
        sse({"type": "ping"}, "ping"),
    ]
    for index, block in enumerate(blocks):
        head: dict[str, Any]
        deltas: list[dict[str, Any]]
        if block["type"] == "thinking":
            head = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": w} for w in words(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "text":
            head = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": w} for w in words(block["text"])]
        else:
            head = {**block, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in pieces(json.dumps(block["input"]))
            ]
        out.append(
            sse(
                {"type": "content_block_start", "index": index, "content_block": head},
                "content_block_start",
            )
        )
        out += [
            sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta")
            for d in deltas
        ]
        out.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": turn.stop, "stop_sequence": None},
        "usage": {"output_tokens": turn.output_tokens},
    }
    out += [sse(delta, "message_delta"), sse({"type": "message_stop"}, "message_stop")]
    return out


# --- OpenAI Chat Completions -------------------------------------------------------------

_CHAT_FINISH = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "stop_sequence": "stop",
}


def _chat_usage(turn: Turn) -> dict[str, int]:
    return {
        "prompt_tokens": turn.input_tokens,
        "completion_tokens": turn.output_tokens,
        "total_tokens": turn.input_tokens + turn.output_tokens,
    }


def _chat_calls(turn: Turn) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id or turn.new_id("call_stub"),
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.input)},
        }
        for c in turn.reply.tool_calls
    ]


def chat_json(turn: Turn) -> dict[str, Any]:
    """A `chat.completion` object with one choice."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": turn.reply.text or None,
        "refusal": None,
    }
    if turn.reply.tool_calls:
        message["tool_calls"] = _chat_calls(turn)
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": _CHAT_FINISH.get(turn.stop, turn.stop),
    }
    return {
        "id": turn.new_id("chatcmpl-stub"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": turn.model,
        "choices": [choice],
        "usage": _chat_usage(turn),
        "system_fingerprint": "fp_stub",
    }


def chat_events(turn: Turn, include_usage: bool) -> list[bytes]:
    """Role chunk, a chunk per word, tool calls (name first, then argument pieces), a
    finish chunk, the usage chunk when asked for, and `data: [DONE]`."""
    head = {
        "id": turn.new_id("chatcmpl-stub"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": turn.model,
        "system_fingerprint": "fp_stub",
    }
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**head, "choices": [choice], **extra})

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out += [chunk({"content": w}) for w in words(turn.reply.text)]
    for index, call in enumerate(_chat_calls(turn)):
        fn = call["function"]
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        out += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
            for p in pieces(fn["arguments"])
        ]
    out.append(chunk({}, _CHAT_FINISH.get(turn.stop, turn.stop)))
    if include_usage:
        out.append(sse({**head, "choices": [], "usage": _chat_usage(turn)}))
    out.append(sse("[DONE]"))
    return out


# --- OpenAI Responses --------------------------------------------------------------------


def responses_json(turn: Turn, request: dict[str, Any]) -> dict[str, Any]:
    """A finished `response` object: one message item, then a function_call per tool call."""
    output: list[dict[str, Any]] = []
    if turn.reply.text:
        part = {"type": "output_text", "text": turn.reply.text, "annotations": [], "logprobs": []}
        output.append(
            {
                "type": "message",
                "id": turn.new_id("msg_stub"),
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    output += [
        {
            "type": "function_call",
            "id": turn.new_id("fc_stub"),
            "call_id": c.id or turn.new_id("call_stub"),
            "name": c.name,
            "arguments": json.dumps(c.input),
            "status": "completed",
        }
        for c in turn.reply.tool_calls
    ]
    incomplete = turn.stop == "max_tokens"
    return {
        "id": turn.new_id("resp_stub"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.get("instructions"),
        "model": turn.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "metadata": {},
        "store": False,
        "previous_response_id": request.get("previous_response_id"),
        "usage": {
            "input_tokens": turn.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": turn.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": turn.input_tokens + turn.output_tokens,
        },
    }


def responses_events(turn: Turn, request: dict[str, Any]) -> list[bytes]:
    """Typed events with `sequence_number`, ending in response.completed (or .incomplete)
    that carries the whole response, usage included."""
    final = responses_json(turn, request)
    pending = {
        **final,
        "status": "in_progress",
        "output": [],
        "usage": None,
        "incomplete_details": None,
    }
    seq = iter(range(1_000_000))

    def ev(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(seq), **fields}, kind)

    out = [ev("response.created", response=pending), ev("response.in_progress", response=pending)]
    for index, item in enumerate(final["output"]):
        at = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(
                ev(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
            )
            out.append(ev("response.content_part.added", **at, content_index=0, part=empty))
            out += [
                ev("response.output_text.delta", **at, content_index=0, delta=w, logprobs=[])
                for w in words(text)
            ]
            out.append(
                ev("response.output_text.done", **at, content_index=0, text=text, logprobs=[])
            )
            out.append(
                ev("response.content_part.done", **at, content_index=0, part=item["content"][0])
            )
        else:
            out.append(
                ev(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
            )
            out += [
                ev("response.function_call_arguments.delta", **at, delta=p)
                for p in pieces(item["arguments"])
            ]
            out.append(
                ev(
                    "response.function_call_arguments.done",
                    **at,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        out.append(ev("response.output_item.done", output_index=index, item=item))
    done = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    out.append(ev(done, response=final))
    return out


# --- Gemini generateContent --------------------------------------------------------------

_GEMINI_FINISH = {
    "end_turn": "STOP",
    "tool_use": "STOP",
    "max_tokens": "MAX_TOKENS",
    "stop_sequence": "STOP",
}


def _gemini_chunk(turn: Turn, parts: list[dict[str, Any]], rid: str, last: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    usage = {"promptTokenCount": turn.input_tokens, "totalTokenCount": turn.input_tokens}
    if last:
        candidate["finishReason"] = _GEMINI_FINISH.get(turn.stop, turn.stop)
        usage = {
            "promptTokenCount": turn.input_tokens,
            "candidatesTokenCount": turn.output_tokens,
            "totalTokenCount": turn.input_tokens + turn.output_tokens,
        }
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": turn.model,
        "responseId": rid,
    }


def _gemini_parts(turn: Turn) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if turn.reply.thinking:
        parts.append({"text": turn.reply.thinking, "thought": True})
    if turn.reply.text:
        parts.append({"text": turn.reply.text})
    parts += [{"functionCall": {"name": c.name, "args": c.input}} for c in turn.reply.tool_calls]
    return parts


def gemini_json(turn: Turn) -> dict[str, Any]:
    """A `GenerateContentResponse` with every part in one candidate."""
    return _gemini_chunk(turn, _gemini_parts(turn), turn.new_id("stub-resp-"), last=True)


def gemini_chunks(turn: Turn) -> list[dict[str, Any]]:
    """Stream chunks: a text part per word; function calls arrive whole (Gemini never
    splits their args) in the last chunk, which also carries finishReason and usage."""
    rid = turn.new_id("stub-resp-")
    parts: list[list[dict[str, Any]]] = []
    if turn.reply.thinking:
        parts += [[{"text": w, "thought": True}] for w in words(turn.reply.thinking)]
    parts += [[{"text": w}] for w in words(turn.reply.text)]
    calls = [{"functionCall": {"name": c.name, "args": c.input}} for c in turn.reply.tool_calls]
    if calls or not parts:
        parts.append(calls or [{"text": ""}])
    return [_gemini_chunk(turn, p, rid, last=i == len(parts) - 1) for i, p in enumerate(parts)]


# --- errors ------------------------------------------------------------------------------

_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
}
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_json(api: str, status: int, message: str) -> dict[str, Any]:
    """The error body each provider sends, so SDKs map it to their typed exceptions."""
    if api.startswith("anthropic"):
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_stub",
        }
    if api.startswith(("gemini", "code_assist")):
        return {
            "error": {
                "code": status,
                "message": message,
                "status": _GEMINI_STATUS.get(status, "UNKNOWN"),
            }
        }
    kind, code = _OPENAI_ERRORS.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
