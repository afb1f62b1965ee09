"""OpenAI Responses API (`/responses`): `instructions` + `input` items, `output` items.

Items are not messages, so they are grouped into turns the way Chat Completions would
have carried them, which makes a conversation read the same in either OpenAI format:

- `reasoning`, an assistant `message` and `function_call`-like items that follow one
  another form ONE assistant turn: reasoning opens a turn (its summary becomes the
  turn's thinking), the message gives its text, and every call after them is added to
  it. A reasoning item or an assistant message that arrives after the turn already has
  text or calls starts the next assistant turn (a new model response).
- each `function_call_output` (and `custom_tool_call_output`, ...) is its own `tool`
  turn, like a Chat `tool` message; user/system/developer messages are their own turns
  (`developer` reads as `system`), except the leading run of system/developer messages,
  which joins `instructions` as the system prompt.

A reply (`output`) is always ONE turn: all its items merged.

Streams: the `response.completed` (or `.incomplete`/`.failed`) event carries the full
response and is preferred; without it (a cut stream) the output is rebuilt from
`output_item.added/.done` and the text/argument/summary deltas, and marked truncated.
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
    join_text,
    make_usage,
    opt_int,
    opt_str,
)
from engram.wire.model import ToolCall, ToolResult, Turn, Usage
from engram.wire.openai_chat import content_text
from engram.wire.sse import JSONStream

_TERMINAL = frozenset(
    {"response.completed", "response.incomplete", "response.failed", "response.done"}
)
_ARG_DELTAS = frozenset(
    {"response.function_call_arguments.delta", "response.custom_tool_call_input.delta"}
)
_REASONING_DELTAS = frozenset(
    {"response.reasoning_summary_text.delta", "response.reasoning_text.delta"}
)


def parse_request(body: dict[str, Any], endpoint: str = "") -> ParsedRequest:
    instructions = body.get("instructions")
    if isinstance(instructions, list):
        system = join_text(remove_block(_item_text(item)) for item in instructions)
    else:
        system = remove_block(as_str(instructions))
    items = body.get("input")
    turns = [Turn(role="user", text=items)] if isinstance(items, str) else _group(items)
    # Leading system/developer messages are the system prompt, as in Chat Completions
    # (Codex and opencode send their instructions this way, opencode even its title
    # generator's): only later ones are mid-conversation system turns.
    lead = []
    while turns and turns[0].role == "system":
        lead.append(turns.pop(0).text)
    if lead:
        system = join_text([system, *lead])
    return ParsedRequest(
        system=system,
        turns=turns,
        model=opt_str(body.get("model")),
        stream=body.get("stream") is True,
        session_id=opt_str(body.get("prompt_cache_key")),
        max_tokens=opt_int(body.get("max_output_tokens")),
        stateful=bool(body.get("previous_response_id") or body.get("conversation")),
    )


def _item_text(item: Any) -> str:
    return item if isinstance(item, str) else content_text(as_dict(item).get("content"))


def _kind(item: dict[str, Any]) -> str:
    kind = as_str(item.get("type"))
    return "message" if not kind and "role" in item else kind


def _add_assistant_item(builder: TurnBuilder, item: dict[str, Any], kind: str) -> bool:
    """Add an item that belongs to an assistant turn; False if it does not."""
    if kind == "message":
        builder.texts.append(content_text(item.get("content")))
    elif kind == "reasoning":
        parts = as_list(item.get("summary")) or as_list(item.get("content"))
        builder.thinking.append(join_text(as_str(as_dict(p).get("text")) for p in parts))
    elif kind.endswith("_call"):
        if kind == "function_call" or kind == "custom_tool_call":
            name = as_str(item.get("name"))
            arguments = item.get("arguments") if kind == "function_call" else item.get("input")
        else:  # built-in tools: web_search_call, local_shell_call, ...
            name = kind.removesuffix("_call")
            arguments = item.get("action", item.get("arguments", item.get("input")))
        call_id = as_str(item.get("call_id")) or as_str(item.get("id"))
        builder.calls.append(
            ToolCall(id=call_id, name=name, arguments=canonical_arguments(arguments))
        )
    else:
        return False
    return True


def _group(items: Any) -> list[Turn]:
    turns: list[Turn] = []
    pending: TurnBuilder | None = None

    def flush() -> None:
        nonlocal pending
        if pending is not None and not pending.is_empty():
            turns.append(pending.build("assistant"))
        pending = None

    for raw in as_list(items):
        if isinstance(raw, str):
            flush()
            turns.append(Turn(role="user", text=raw))
            continue
        item = as_dict(raw)
        kind = _kind(item)
        role = as_str(item.get("role")) or "user"
        if (
            kind == "reasoning"
            or kind.endswith("_call")
            or (kind == "message" and role == "assistant")
        ):
            opens = kind in ("reasoning", "message")
            if pending is None or (opens and (pending.texts or pending.calls)):
                flush()
                pending = TurnBuilder()
            _add_assistant_item(pending, item, kind)
            continue
        flush()
        if kind == "message":
            text = content_text(item.get("content"))
            if role in ("system", "developer"):
                text = remove_block(text)
                if text:
                    turns.append(Turn(role="system", text=text))
            else:
                turns.append(Turn(role=role, text=text))
        elif kind.endswith("_call_output"):
            output = item.get("output")
            text = output if isinstance(output, str) else content_text(output)
            result = ToolResult(call_id=as_str(item.get("call_id")), content=text)
            turns.append(Turn(role="tool", tool_results=(result,)))
    flush()
    return turns


def usage_of(usage: Any) -> Usage:
    u = as_dict(usage)
    cached = as_dict(u.get("input_tokens_details")).get("cached_tokens")
    return make_usage(
        u.get("input_tokens"), u.get("output_tokens"), cached, prompt_includes_cache=True
    )


def parse_response_json(body: Any) -> ParsedResponse:
    response = as_dict(body)
    error = error_text(body)
    if "output" not in response:
        return ParsedResponse(error=error or "response has no output")
    builder = TurnBuilder()
    for raw in as_list(response.get("output")):
        item = as_dict(raw)
        _add_assistant_item(builder, item, _kind(item))
    incomplete = as_dict(response.get("incomplete_details")).get("reason")
    return ParsedResponse(
        reply=None if builder.is_empty() else builder.build("assistant"),
        usage=usage_of(response.get("usage")),
        stop_reason=opt_str(incomplete) or opt_str(response.get("status")),
        model=opt_str(response.get("model")),
        error=error,
    )


def parse_response_stream(stream: JSONStream) -> ParsedResponse:
    base: dict[str, Any] = {}
    final: dict[str, Any] | None = None
    items: dict[int, dict[str, Any]] = {}
    finished: set[int] = set()
    pieces: dict[int, list[str]] = {}
    error: str | None = None
    for name, data in stream.items:
        if not isinstance(data, dict):
            continue
        kind = as_str(data.get("type")) or name
        index = data.get("output_index")
        if kind in _TERMINAL:
            final = as_dict(data.get("response"))
        elif kind in ("response.created", "response.in_progress"):
            base = as_dict(data.get("response"))
        elif kind == "response.output_item.added" and isinstance(index, int):
            items[index] = dict(as_dict(data.get("item")))
        elif kind == "response.output_item.done" and isinstance(index, int):
            items[index] = dict(as_dict(data.get("item")))
            finished.add(index)
        elif (
            isinstance(index, int)
            and isinstance(data.get("delta"), str)
            and (
                kind == "response.output_text.delta"
                or kind in _ARG_DELTAS
                or kind in _REASONING_DELTAS
            )
        ):
            pieces.setdefault(index, []).append(data["delta"])
            items.setdefault(index, {"type": _delta_item_type(kind)})
        elif kind == "error":
            error = error_text(data) or _flat_error(data)
    if final is not None and as_list(final.get("output")):
        result = parse_response_json(final)
    else:
        response = dict(final if final is not None else base)
        response["output"] = [
            _finish_item(items[i], pieces.get(i), i in finished) for i in sorted(items)
        ]
        result = parse_response_json(response)
    result.stream = True
    result.truncated = stream.truncated or final is None
    result.error = error or result.error
    return result


def _delta_item_type(kind: str) -> str:
    if kind in _ARG_DELTAS:
        return "function_call"
    return "reasoning" if kind in _REASONING_DELTAS else "message"


def _flat_error(data: dict[str, Any]) -> str:
    code, message = as_str(data.get("code")), as_str(data.get("message"))
    return f"{code}: {message}" if code and message else message or code or "stream error"


def _finish_item(item: dict[str, Any], pieces: list[str] | None, done: bool) -> dict[str, Any]:
    if done or not pieces:
        return item
    joined = "".join(pieces)
    kind = _kind(item)
    if kind == "message":
        item["content"] = [{"type": "output_text", "text": joined}]
    elif kind == "reasoning":
        item["summary"] = [{"type": "summary_text", "text": joined}]
    elif kind == "custom_tool_call":
        item["input"] = joined
    else:
        item["arguments"] = joined
    return item
