"""Shared builders for wire tests and bench/wire.py (a plain module, not a conftest).

`claude_code_request` makes a request shaped like a real Claude Code one (24 tools,
cached system blocks, tool_use/tool_result history); the renderers turn one reply into
both its JSON and its SSE form, so tests can check that the two parse the same.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engram.wire.model import RawRequest, RawResponse

FIXTURES = Path(__file__).parent / "fixtures" / "wire"
SESSION_ID = "3f1c9a52-7d1e-4b8a-9c55-0e2d7b6a1f40"
PROJECT = "/home/dev/acme-api"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def raw_request(
    path: str,
    body: Any,
    *,
    host: str = "api.anthropic.com",
    headers: Iterable[tuple[str, str]] = (),
    timestamp: float | None = 1000.0,
) -> RawRequest:
    data = body if isinstance(body, bytes | None) else dumps(body)
    return RawRequest(
        headers=[("content-type", "application/json"), *headers],
        body=data,
        timestamp_start=timestamp,
        host=host,
        path=path,
    )


def raw_response(body: Any, status: int = 200, *, timestamp: float | None = 1002.5) -> RawResponse:
    data = body if isinstance(body, bytes | None) else dumps(body)
    return RawResponse(status_code=status, body=data, timestamp_end=timestamp)


# --------------------------------------------------------------------------- Claude Code


def _tool(index: int) -> dict[str, Any]:
    names = [
        "Task",
        "Bash",
        "Glob",
        "Grep",
        "ExitPlanMode",
        "Read",
        "Edit",
        "Write",
        "NotebookEdit",
        "WebFetch",
        "TodoWrite",
        "WebSearch",
        "BashOutput",
        "KillShell",
        "SlashCommand",
        "Skill",
        "mcp__ide__getDiagnostics",
        "mcp__ide__executeCode",
        "mcp__github__search",
        "mcp__github__pr",
        "ListMcpResources",
        "ReadMcpResource",
        "AskUserQuestion",
        "EnterPlanMode",
    ]
    sentence = (
        f"Use the {names[index]} tool when the task calls for it; read the usage notes "
        "carefully, prefer specialised tools over shell commands, and never guess paths. "
    )
    properties = {
        f"param_{k}": {"type": "string", "description": f"Parameter {k}. " + sentence}
        for k in range(4)
    }
    return {
        "name": names[index],
        "description": sentence * 8,
        "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": properties,
            "required": ["param_0"],
            "additionalProperties": False,
        },
    }


def _history(n_messages: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "<system-reminder>\nAs you answer the user's "
                    "questions, you can use the following context:\n# claudeMd\nRun `make test` "
                    "before committing.\n</system-reminder>",
                },
                {"type": "text", "text": "The user tests fail after the rename; please fix."},
            ],
        }
    ]
    step = 0
    while len(messages) < n_messages - 1:
        call_id = f"toolu_01{step:04d}abcdefghijklmnop"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": f"Step {step}: inspect the next file.",
                        "signature": "EqQBCkYIBxgCKkB" * 4,
                    },
                    {"type": "text", "text": f"Checking module {step}."},
                    {
                        "type": "tool_use",
                        "id": call_id,
                        "name": "Read",
                        "input": {"file_path": f"{PROJECT}/app/module_{step}.py", "limit": 200},
                    },
                ],
            }
        )
        body = "\n".join(f"{n:6d}\tdef handler_{n}(request):  # step {step}" for n in range(12))
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": body}],
            }
        )
        step += 1
    messages.append({"role": "user", "content": "Thanks. Now run the whole suite."})
    return messages


def claude_code_request(
    n_messages: int = 30, *, session_id: str = SESSION_ID, project: str = PROJECT
) -> dict[str, Any]:
    """A request body shaped like Claude Code 2.1's (~75 KB at the default size)."""
    guidance = (
        "You are an interactive CLI tool that helps users with software engineering tasks. "
        "Use the instructions below and the tools available to you to assist the user.\n"
    ) * 40
    environment = (
        "Here is useful information about the environment you are running in:\n<env>\n"
        f"Working directory: {project}\nPrimary working directory: {project}\n"
        "Is directory a git repo: Yes\nPlatform: linux\nToday's date: 2026-11-21\n</env>\n"
    )
    return {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": True,
        "metadata": {"user_id": json.dumps({"device_id": "9d2f" * 16, "session_id": session_id})},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "system": [
            {
                "type": "text",
                "text": "x-anthropic-billing-header: cc_version=2.1.14; cc_entrypoint=cli",
            },
            {
                "type": "text",
                "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": {"type": "ephemeral"},
            },
            {
                "type": "text",
                "text": guidance + environment,
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "tools": [_tool(i) for i in range(24)],
        "messages": _history(n_messages),
    }


def claude_code_raw(body: dict[str, Any] | None = None) -> RawRequest:
    return raw_request(
        "/v1/messages?beta=true",
        body if body is not None else claude_code_request(),
        headers=[
            ("anthropic-version", "2023-06-01"),
            ("X-Claude-Code-Session-Id", SESSION_ID),
            ("User-Agent", "claude-cli/2.1.14 (external, cli)"),
        ],
    )


# --------------------------------------------------------------------------- replies


@dataclass
class ReplySpec:
    """One assistant reply, renderable in several wire forms."""

    texts: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # id, name, input
    thinking: str = ""
    input_tokens: int = 10
    output_tokens: int = 20
    cache_read: int = 0
    cache_creation: int = 0
    model: str = "claude-sonnet-4-5-20250929"


def pieces(text: str, sizes: Sequence[int]) -> list[str]:
    """Cut `text` into consecutive pieces of the given sizes (cycled), at least one piece."""
    out: list[str] = []
    pos, k = 0, 0
    while pos < len(text):
        size = max(sizes[k % len(sizes)], 1) if sizes else len(text)
        out.append(text[pos : pos + size])
        pos += size
        k += 1
    return out or [""]


def _sse(events: Iterable[tuple[str | None, Any]]) -> str:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(out)


def anthropic_json(spec: ReplySpec) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if spec.thinking:
        content.append({"type": "thinking", "thinking": spec.thinking, "signature": "sig"})
    content += [{"type": "text", "text": t} for t in spec.texts]
    content += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in spec.calls]
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": spec.model,
        "content": content,
        "stop_reason": "tool_use" if spec.calls else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": spec.input_tokens,
            "output_tokens": spec.output_tokens,
            "cache_read_input_tokens": spec.cache_read,
            "cache_creation_input_tokens": spec.cache_creation,
        },
    }


def anthropic_sse(
    spec: ReplySpec, sizes: Sequence[int] = (7,), *, cut: Callable[[str], list[str]] | None = None
) -> str:
    """The stream of `anthropic_json(spec)`, each block's text cut by `sizes` (or `cut`)."""
    split = cut or (lambda text: pieces(text, sizes))
    message = anthropic_json(spec)
    start = dict(message, content=[], stop_reason=None)
    start["usage"] = dict(message["usage"], output_tokens=1)
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "tool_use":
            first = dict(block, input={})
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in split(json.dumps(block["input"]))
            ]
        elif kind == "thinking":
            first = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in split(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": "sig"})
        else:
            first = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in split(block["text"])]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": first},
            )
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        events += [
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": spec.output_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return _sse(events)


def chat_json(spec: ReplySpec) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(spec.texts) or None}
    if spec.calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in spec.calls
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1,
        "model": spec.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if spec.calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": spec.input_tokens + spec.cache_read,
            "completion_tokens": spec.output_tokens,
            "total_tokens": spec.input_tokens + spec.cache_read + spec.output_tokens,
            "prompt_tokens_details": {"cached_tokens": spec.cache_read},
        },
    }


def chat_sse(spec: ReplySpec, sizes: Sequence[int] = (7,)) -> str:
    full = chat_json(spec)
    base = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": spec.model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
    events += [(None, chunk({"content": p})) for p in pieces("".join(spec.texts), sizes)]
    for index, (call_id, name, args) in enumerate(spec.calls):
        events.append(
            (
                None,
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                ),
            )
        )
        events += [
            (None, chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}))
            for p in pieces(json.dumps(args), sizes)
        ]
    events.append((None, chunk({}, full["choices"][0]["finish_reason"])))
    events.append((None, dict(base, choices=[], usage=full["usage"])))
    events.append((None, "[DONE]"))
    return _sse(events)


def split_into(text: str, n: int) -> list[str]:
    """Cut `text` into exactly `n` nearly equal pieces (`n` <= len(text))."""
    bounds = [len(text) * k // n for k in range(n + 1)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def anthropic_sse_reply(n_events: int = 50) -> bytes:
    """A streamed Claude reply of exactly `n_events` events: text, then one tool call."""
    spec = ReplySpec(
        texts=["I found the problem: the handler reads `mail` but the schema says `email`. " * 8],
        calls=[
            (
                "toolu_01bench",
                "Edit",
                {
                    "file_path": f"{PROJECT}/app/users.py",
                    "old_string": "data['mail']",
                    "new_string": "data['email']",
                },
            )
        ],
    )
    # message_start, ping, 2 x (block start, block stop), message_delta, message_stop: 8.
    deltas = max(n_events - 8, 2)
    text_n = deltas - deltas // 3
    args_n = deltas // 3

    def cut(text: str) -> list[str]:
        return split_into(text, text_n if text == spec.texts[0] else args_n)

    return anthropic_sse(spec, cut=cut).encode()
