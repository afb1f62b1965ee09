"""OpenAI Chat Completions (`/chat/completions`, and every OpenAI-compatible server).

The system prompt is the run of `system`/`developer` messages before the first other
message; later ones are mid-conversation `system` turns. Each `tool` message becomes a
`tool` turn holding one ToolResult, as on the wire. Reasoning text that compatible
servers return (`reasoning_content` from DeepSeek/Qwen, `reasoning` from others) is
kept as thinking.

A stream is folded back into the `message` object a non-streamed call returns and read
by the same function, so both paths agree by construction.
"""

from __future__ import annotations

from typing import Any

from engram.wire.block import remove_block
from engram.wire.common import (
    ParsedRequest,
    ParsedResponse,
    TurnBuilder,
    as_dict,
    as_list,
    as_str,
    canonical_arguments,
    error_text,
    first_dict,
    join_text,
    make_usage,
    opt_int,
    opt_str,
    placeholder,
)
from engram.wire.model import ToolCall, ToolResult, Turn, Usage
from engram.wire.sse import JSONStream

_SYSTEM_ROLES = frozenset({"system", "developer"})


def parse_request(body: dict[str, Any], endpoint: str = "") -> ParsedRequest:
    system: list[str] = []
    turns: list[Turn] = []
    leading = True
    for message in as_list(body.get("messages")):
        if not isinstance(message, dict):
            continue
        role = as_str(message.get("role")) or "user"
        if role in _SYSTEM_ROLES:
            text = remove_block(content_text(message.get("content")))
            if leading:
                system.append(text)
            elif text:
                turns.append(Turn(role="system", text=text))
            continue
        leading = False
        turns.append(message_turn(message, role))
    return ParsedRequest(
        system=join_text(system),
        turns=turns,
        model=opt_str(body.get("model")),
        stream=body.get("stream") is True,
        session_id=opt_str(body.get("prompt_cache_key")),
        max_tokens=opt_int(body.get("max_completion_tokens", body.get("max_tokens"))),
    )


def content_text(content: Any) -> str:
    """A message's `content`, a string or a list of parts, as text with placeholders."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in as_list(content):
        if isinstance(part, str):
            parts.append(part)
            continue
        part = as_dict(part)
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(as_str(part.get("text")))
        elif kind == "refusal":
            parts.append(as_str(part.get("refusal")))
        elif kind in ("image_url", "input_image", "image"):
            parts.append(placeholder("image"))
        elif kind in ("input_audio", "audio"):
            parts.append(placeholder("audio"))
        elif kind in ("file", "input_file"):
            file = as_dict(part.get("file")) or part
            parts.append(placeholder("file", as_str(file.get("filename"))))
    return join_text(parts)


def message_turn(message: dict[str, Any], role: str) -> Turn:
    if role == "tool" or role == "function":
        call_id = message.get("tool_call_id") if role == "tool" else message.get("name")
        result = ToolResult(call_id=as_str(call_id), content=content_text(message.get("content")))
        return Turn(role="tool", tool_results=(result,))
    builder = TurnBuilder()
    builder.texts.append(content_text(message.get("content")))
    builder.texts.append(as_str(message.get("refusal")))
    thinking = message.get("reasoning_content", message.get("reasoning"))
    builder.thinking.append(as_str(thinking))
    for call in as_list(message.get("tool_calls")):
        call = as_dict(call)
        function = as_dict(call.get("function"))
        builder.calls.append(
            ToolCall(
                id=as_str(call.get("id")),
                name=as_str(function.get("name")),
                arguments=canonical_arguments(function.get("arguments")),
            )
        )
    legacy = as_dict(message.get("function_call"))
    if legacy:
        name = as_str(legacy.get("name"))
        builder.calls.append(
            ToolCall(id=name, name=name, arguments=canonical_arguments(legacy.get("arguments")))
        )
    return builder.build(role)


def usage_of(usage: Any) -> Usage:
    u = as_dict(usage)
    cached = as_dict(u.get("prompt_tokens_details")).get("cached_tokens")
    if cached is None:
        cached = u.get("prompt_cache_hit_tokens")  # DeepSeek's spelling
    return make_usage(
        u.get("prompt_tokens"), u.get("completion_tokens"), cached, prompt_includes_cache=True
    )


def parse_response_json(body: Any) -> ParsedResponse:
    obj = as_dict(body)
    error = error_text(body)
    if error is not None and "choices" not in obj:
        return ParsedResponse(error=error)
    choice = first_dict(obj.get("choices"))
    message = as_dict(choice.get("message"))
    return ParsedResponse(
        reply=message_turn(message, "assistant") if message else None,
        usage=usage_of(obj.get("usage")),
        stop_reason=opt_str(choice.get("finish_reason")),
        model=opt_str(obj.get("model")),
        error=None if message else "response has no message",
    )


def parse_response_stream(stream: JSONStream) -> ParsedResponse:
    content: list[str] = []
    reasoning: list[str] = []
    refusal: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage: Any = None
    model: str | None = None
    error: str | None = None
    seen = False
    for _, data in stream.items:
        if not isinstance(data, dict):
            continue
        if "error" in data and "choices" not in data:
            error = error_text(data)
            continue
        model = opt_str(data.get("model")) or model
        if isinstance(data.get("usage"), dict):
            usage = data["usage"]
        for choice in as_list(data.get("choices")):
            choice = as_dict(choice)
            if choice.get("index", 0) != 0:
                continue
            seen = True
            finish = opt_str(choice.get("finish_reason")) or finish
            delta = as_dict(choice.get("delta"))
            content.append(as_str(delta.get("content")))
            reasoning.append(as_str(delta.get("reasoning_content", delta.get("reasoning"))))
            refusal.append(as_str(delta.get("refusal")))
            for position, call in enumerate(as_list(delta.get("tool_calls"))):
                _add_call_delta(calls, as_dict(call), position)
    if not seen:
        return ParsedResponse(
            usage=usage_of(usage),
            model=model,
            stream=True,
            truncated=stream.truncated or not stream.done,
            error=error,
        )
    message = {
        "content": "".join(content),
        "refusal": "".join(refusal),
        "reasoning_content": "".join(reasoning),
        "tool_calls": [
            {"id": c["id"], "function": {"name": c["name"], "arguments": "".join(c["args"])}}
            for _, c in sorted(calls.items())
        ],
    }
    return ParsedResponse(
        reply=message_turn(message, "assistant"),
        usage=usage_of(usage),
        stop_reason=finish,
        model=model,
        stream=True,
        truncated=stream.truncated or not (stream.done or finish),
        error=error,
    )


def _add_call_delta(calls: dict[int, dict[str, Any]], call: dict[str, Any], position: int) -> None:
    index = call.get("index", position)
    if not isinstance(index, int):
        index = position
    entry = calls.setdefault(index, {"id": "", "name": "", "args": []})
    function = as_dict(call.get("function"))
    entry["id"] = entry["id"] or as_str(call.get("id"))
    entry["name"] = entry["name"] or as_str(function.get("name"))
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        entry["args"].append(arguments)
