"""Anthropic Messages API (`/v1/messages`): request bodies, JSON replies and SSE streams.

A Turn mirrors one message. Tool results stay on the `user` turn whose message carried
them (`Turn.tool_results`), next to any text blocks of that message, as on the wire; a
consumer looking for the user's words reads `user_words(turn.text)`.

A stream is reassembled into the message object the non-streamed API would have
returned and then read by the same code, so both paths agree by construction.
"""

from __future__ import annotations

import json
import re
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
    join_text,
    make_usage,
    opt_int,
    opt_str,
    placeholder,
)
from engram.wire.model import ToolCall, ToolResult, Turn, Usage
from engram.wire.sse import JSONStream

_TOOL_USE = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
_TOOL_RESULT = frozenset(
    {
        "tool_result",
        "mcp_tool_result",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
    }
)
_BILLING_HEADER = "x-anthropic-billing-header:"
_LEGACY_SESSION = re.compile(r"_session_([0-9A-Za-z-]+)")
_DELTA_BLOCK = {"text_delta": "text", "input_json_delta": "tool_use", "thinking_delta": "thinking"}


def parse_request(body: dict[str, Any], endpoint: str = "") -> ParsedRequest:
    turns: list[Turn] = []
    for message in as_list(body.get("messages")):
        turn = _message_turn(message)
        if turn is not None:
            turns.append(turn)
    return ParsedRequest(
        system=system_text(body.get("system")),
        turns=turns,
        model=opt_str(body.get("model")),
        stream=body.get("stream") is True,
        session_id=session_from_user_id(as_dict(body.get("metadata")).get("user_id")),
        max_tokens=opt_int(body.get("max_tokens")),
    )


def system_text(system: Any) -> str:
    """The system prompt as text, engram's block removed from each block before joining.

    Claude Code's first block, `x-anthropic-billing-header: cc_version=...`, is dropped:
    it is client metadata riding in the prompt, and it changes with every release.
    """
    if isinstance(system, str):
        return remove_block(system)
    texts: list[str] = []
    for block in as_list(system):
        text = block if isinstance(block, str) else as_str(as_dict(block).get("text"))
        if not text.startswith(_BILLING_HEADER):
            texts.append(remove_block(text))
    return join_text(texts)


def session_from_user_id(user_id: Any) -> str | None:
    """The session id Claude Code puts in `metadata.user_id`, in its new or old form.

    New: a JSON string `{"device_id": ..., "session_id": ...}`; old:
    `user_<hash>_account_<uuid>_session_<uuid>`.
    """
    if not isinstance(user_id, str) or not user_id:
        return None
    if user_id.lstrip().startswith("{"):
        try:
            return opt_str(as_dict(json.loads(user_id)).get("session_id"))
        except (ValueError, RecursionError):
            return None
    match = _LEGACY_SESSION.search(user_id)
    return match.group(1) if match else None


def _message_turn(message: Any) -> Turn | None:
    if isinstance(message, str):
        return Turn(role="user", text=message)
    if not isinstance(message, dict):
        return None
    role = as_str(message.get("role")) or "user"
    builder = content_builder(message.get("content"))
    if role == "system":
        text = remove_block(join_text(builder.texts))
        return Turn(role="system", text=text) if text else None
    return builder.build(role)


def content_builder(content: Any) -> TurnBuilder:
    """Sort a message's content blocks into text, tool calls, tool results and thinking."""
    builder = TurnBuilder()
    if isinstance(content, str):
        builder.texts.append(content)
        return builder
    for block in as_list(content):
        if isinstance(block, str):
            builder.texts.append(block)
        elif isinstance(block, dict):
            _add_block(builder, block)
    return builder


def _add_block(builder: TurnBuilder, block: dict[str, Any]) -> None:
    kind = block.get("type")
    if kind == "text":
        builder.texts.append(as_str(block.get("text")))
    elif kind in _TOOL_USE:
        builder.calls.append(
            ToolCall(
                id=as_str(block.get("id")),
                name=as_str(block.get("name")),
                arguments=canonical_arguments(block.get("input")),
            )
        )
    elif kind in _TOOL_RESULT:
        builder.results.append(
            ToolResult(
                call_id=as_str(block.get("tool_use_id")),
                content=_result_text(block.get("content")),
                is_error=block.get("is_error") is True,
            )
        )
    elif kind == "thinking":
        builder.thinking.append(as_str(block.get("thinking")))
    elif kind == "redacted_thinking":
        builder.thinking.append("[redacted thinking]")
    else:
        text = _non_text(block)
        if text:
            builder.texts.append(text)


def _non_text(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "image":
        return placeholder("image")
    if kind == "document":
        source = as_dict(block.get("source"))
        return placeholder("document", as_str(block.get("title")) or as_str(source.get("name")))
    if kind == "search_result":
        return placeholder("search result", as_str(block.get("title")))
    return ""


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in as_list(content):
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            if block.get("type") == "text":
                parts.append(as_str(block.get("text")))
            else:
                parts.append(_non_text(block) or placeholder(as_str(block.get("type")) or "?"))
    return join_text(parts)


def usage_of(usage: Any) -> Usage:
    u = as_dict(usage)
    return make_usage(
        u.get("input_tokens"),
        u.get("output_tokens"),
        u.get("cache_read_input_tokens"),
        u.get("cache_creation_input_tokens"),
        prompt_includes_cache=False,
    )


def parse_response_json(body: Any) -> ParsedResponse:
    message = as_dict(body)
    error = error_text(body)
    if error is not None and "content" not in message:
        return ParsedResponse(error=error)
    if not message:
        return ParsedResponse(error="response is not a message object")
    content = message.get("content")
    return ParsedResponse(
        # count_tokens answers {"input_tokens": n}: a valid body without a reply
        reply=None if content is None else content_builder(content).build("assistant"),
        usage=usage_of(message.get("usage")),
        stop_reason=opt_str(message.get("stop_reason")),
        model=opt_str(message.get("model")),
    )


def parse_response_stream(stream: JSONStream) -> ParsedResponse:
    """Rebuild the message from its events, then read it like a JSON reply."""
    message: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    pieces: dict[int, list[str]] = {}
    stop_reason: Any = None
    finished = False
    error: str | None = None
    for name, data in stream.items:
        if type(data) is not dict:
            continue
        kind = data.get("type") or name
        if kind == "content_block_delta":  # the hot path: most events are deltas
            index, delta = data.get("index"), data.get("delta")
            if type(index) is not int or type(delta) is not dict:
                continue
            piece = delta.get("text")
            if piece is None:
                piece = delta.get("partial_json")
                if piece is None:
                    piece = delta.get("thinking")
            if type(piece) is str:
                if index not in blocks:
                    blocks[index] = {"type": _DELTA_BLOCK.get(as_str(delta.get("type")), "text")}
                collected = pieces.get(index)
                if collected is None:
                    pieces[index] = [piece]
                else:
                    collected.append(piece)
        elif kind == "content_block_start":
            index = data.get("index")
            if isinstance(index, int):
                blocks[index] = dict(as_dict(data.get("content_block")))
        elif kind == "message_start":
            message = dict(as_dict(data.get("message")))
            usage.update(_present(message.get("usage")))
        elif kind == "message_delta":
            stop_reason = as_dict(data.get("delta")).get("stop_reason") or stop_reason
            usage.update(_present(data.get("usage")))
        elif kind == "message_stop":
            finished = True
        elif kind == "error":
            error = error_text(data) or "stream error"
    if not message and not blocks:
        return ParsedResponse(stream=True, truncated=True, error=error)
    message["content"] = [_finish_block(blocks[i], pieces.get(i)) for i in sorted(blocks)]
    message["usage"] = usage
    if stop_reason:
        message["stop_reason"] = stop_reason
    result = parse_response_json(message)
    result.stream = True
    result.truncated = stream.truncated or not finished
    result.error = error
    return result


def _present(usage: Any) -> dict[str, Any]:
    return {key: value for key, value in as_dict(usage).items() if value is not None}


def _finish_block(block: dict[str, Any], pieces: list[str] | None) -> dict[str, Any]:
    if not pieces:
        return block
    joined = "".join(pieces)
    kind = block.get("type")
    if kind in _TOOL_USE:
        # Kept as text when cut off: canonical_arguments keeps non-JSON text verbatim.
        block["input"] = joined if joined.strip() else block.get("input")
    elif kind == "thinking":
        block["thinking"] = as_str(block.get("thinking")) + joined
    else:
        block["text"] = as_str(block.get("text")) + joined
    return block
