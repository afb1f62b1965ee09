"""OpenAI Chat Completions and Responses: requests, item grouping, JSON and streams."""

from __future__ import annotations

import json

import pytest
from wirefixtures import fixture_bytes, fixture_json

from engram.wire import openai_chat, openai_responses
from engram.wire.block import wrap_block
from engram.wire.model import ToolCall, ToolResult, Turn, Usage
from engram.wire.sse import decode_sse

# ---------------------------------------------------------------- Chat Completions


def test_chat_request_fixture() -> None:
    parsed = openai_chat.parse_request(fixture_json("openai_chat_request.json"))
    assert (
        parsed.system
        == "Act as an expert software developer.\nAlways use best practices.\n\nReply in English."
    )
    assert parsed.model == "gpt-4.1" and parsed.stream
    assert [t.role for t in parsed.turns] == ["user", "assistant", "tool", "tool", "user"]
    calls = parsed.turns[1].tool_calls
    assert calls == (
        ToolCall("call_abc123", "get_weather", '{"location": "Paris", "unit": "c"}'),
        ToolCall("call_def456", "read_file", '{"path": "notes.md"}'),
    )
    assert parsed.turns[2].tool_results == (
        ToolResult("call_abc123", '{"temp": 14, "sky": "cloudy"}'),
    )
    assert parsed.turns[3].tool_results == (ToolResult("call_def456", "# Notes\n"),)
    assert parsed.turns[4].text == "Also look at this screenshot.\n\n[image]\n\n[file: report.pdf]"


def test_chat_injected_system_message_and_late_system_turns() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Agent prompt."},
            {"role": "system", "content": wrap_block("- memory")},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": "Mid-conversation note."},
            {"role": "system", "content": wrap_block("- again")},
            {"role": "function", "name": "lookup", "content": "42"},
            {
                "role": "assistant",
                "content": "ok",
                "reasoning_content": "thinking...",
                "function_call": {"name": "lookup", "arguments": "{}"},
            },
        ]
    }
    parsed = openai_chat.parse_request(body)
    assert parsed.system == "Agent prompt."
    assert parsed.turns[:2] == [
        Turn(role="user", text="hi"),
        Turn(role="system", text="Mid-conversation note."),
    ]
    assert parsed.turns[2] == Turn(role="tool", tool_results=(ToolResult("lookup", "42"),))
    assert parsed.turns[3] == Turn(
        role="assistant",
        text="ok",
        thinking="thinking...",
        tool_calls=(ToolCall("lookup", "lookup", "{}"),),
    )


def test_chat_json_and_stream_fixtures_agree() -> None:
    from_json = openai_chat.parse_response_json(fixture_json("openai_chat_response.json"))
    from_sse = openai_chat.parse_response_stream(
        decode_sse(fixture_bytes("openai_chat_response.sse").decode())
    )
    assert from_sse.reply == from_json.reply
    assert from_json.reply is not None
    assert from_json.reply.text == "Paris is 14°C and cloudy. Updating notes.md now."
    assert from_sse.usage == from_json.usage == Usage(1117 - 1024, 46, 1024, 0)
    assert from_sse.stop_reason == from_json.stop_reason == "tool_calls"
    assert from_sse.model == from_json.model == "gpt-4.1-2025-04-14"
    assert not from_sse.truncated


def test_chat_stream_without_done_or_finish_is_truncated() -> None:
    text = fixture_bytes("openai_chat_response.sse").decode()
    cut = text[: text.index('"finish_reason":"tool_calls"')]
    cut = cut[: cut.rindex("\n\n") + 2]
    parsed = openai_chat.parse_response_stream(decode_sse(cut))
    assert parsed.truncated
    assert parsed.reply is not None and parsed.reply.tool_calls[0].name == "write_file"


def test_chat_stream_reasoning_and_parallel_calls_by_index() -> None:
    chunks = [
        {"model": "deepseek-chat", "choices": [{"index": 0, "delta": {"reasoning_content": "Hm"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": "b",
                                "function": {"name": "g", "arguments": '{"y":'},
                            },
                            {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}},
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 1, "function": {"arguments": " 2}"}}]},
                }
            ]
        },
        {"choices": [{"index": 1, "delta": {"content": "other choice"}}]},
        {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "prompt_cache_hit_tokens": 4},
        },
    ]
    text = "".join(f"data:{json.dumps(c)}\n\n" for c in chunks)
    parsed = openai_chat.parse_response_stream(decode_sse(text))
    assert parsed.reply == Turn(
        role="assistant",
        thinking="Hm",
        tool_calls=(ToolCall("a", "f", "{}"), ToolCall("b", "g", '{"y": 2}')),
    )
    assert parsed.usage == Usage(6, 5, 4, 0)
    assert not parsed.truncated  # finish_reason arrived, [DONE] is optional


def test_chat_error_body() -> None:
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}}
    assert openai_chat.parse_response_json(body).error == "requests: Rate limit reached"
    stream = decode_sse('data: {"error": {"message": "boom"}}\n\n')
    assert openai_chat.parse_response_stream(stream).error == "boom"


# ---------------------------------------------------------------- Responses


def test_responses_request_fixture_grouping() -> None:
    parsed = openai_responses.parse_request(fixture_json("openai_responses_request.json"))
    assert parsed.system.startswith("You are Codex")
    assert parsed.session_id == "0199a2c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
    # The leading developer message (Codex's permissions) is part of the system prompt.
    assert "<permissions instructions>" in parsed.system
    roles = [t.role for t in parsed.turns]
    assert roles == ["user", "user", "assistant", "tool", "assistant", "tool", "user"]
    first_call = parsed.turns[2]
    assert first_call.thinking == "**Inspecting routes**"
    assert first_call.tool_calls == (
        ToolCall("call_111", "shell", '{"command": ["bash", "-lc", "ls app"]}'),
    )
    patch = parsed.turns[4]
    assert patch.text == "Adding the route now."
    assert patch.tool_calls[0].name == "apply_patch"
    assert patch.tool_calls[0].arguments.startswith("*** Begin Patch")  # free-form, kept verbatim
    assert parsed.turns[5].tool_results == (
        ToolResult("call_222", "Success. Updated app/routes.py"),
    )
    assert parsed.turns[6] == Turn(role="user", text="Now run the tests.")


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        # reasoning + message + two calls: one turn
        (
            [
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "r"}]},
                {"type": "message", "role": "assistant", "content": "t"},
                {"type": "function_call", "call_id": "1", "name": "a", "arguments": "{}"},
                {"type": "function_call", "call_id": "2", "name": "b", "arguments": "{}"},
            ],
            [Turn("assistant", "t", (ToolCall("1", "a", "{}"), ToolCall("2", "b", "{}")), (), "r")],
        ),
        # a message after calls starts a new turn; so does reasoning after text
        (
            [
                {"type": "function_call", "call_id": "1", "name": "a", "arguments": ""},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "x"}],
                },
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "r2"}]},
                {"type": "message", "role": "assistant", "content": "y"},
            ],
            [
                Turn("assistant", tool_calls=(ToolCall("1", "a", "{}"),)),
                Turn("assistant", "x"),
                Turn("assistant", "y", thinking="r2"),
            ],
        ),
        # empty reasoning alone adds no turn; outputs are tool turns; built-in tools are calls
        (
            [
                {"type": "reasoning", "summary": []},
                {"type": "web_search_call", "id": "ws_1", "action": {"query": "q"}},
                {
                    "type": "function_call_output",
                    "call_id": "ws_1",
                    "output": [{"type": "input_text", "text": "found"}],
                },
                "plain string item",
            ],
            [
                Turn("assistant", tool_calls=(ToolCall("ws_1", "web_search", '{"query": "q"}'),)),
                Turn("tool", tool_results=(ToolResult("ws_1", "found"),)),
                Turn("user", "plain string item"),
            ],
        ),
    ],
)
def test_responses_item_grouping(items: list[object], expected: list[Turn]) -> None:
    assert openai_responses.parse_request({"input": items}).turns == expected


def test_responses_string_input_and_instructions_block() -> None:
    body = {"input": "hello", "instructions": f"Be terse.\n\n{wrap_block('m')}", "model": "o3"}
    parsed = openai_responses.parse_request(body)
    assert parsed.turns == [Turn(role="user", text="hello")]
    assert parsed.system == "Be terse."


def test_responses_json_and_stream_fixtures_agree() -> None:
    from_json = openai_responses.parse_response_json(fixture_json("openai_responses_response.json"))
    text = fixture_bytes("openai_responses_response.sse").decode()
    from_sse = openai_responses.parse_response_stream(decode_sse(text))
    expected = Turn(
        role="assistant",
        text="Running the test suite.",
        tool_calls=(
            ToolCall(
                "call_333",
                "shell",
                '{"command": ["bash", "-lc", "pytest -q"], "timeout_ms": 120000}',
            ),
        ),
        thinking="**Running tests**",
    )
    assert from_json.reply == from_sse.reply == expected
    assert from_json.usage == from_sse.usage == Usage(1024, 210, 4096, 0)
    assert from_json.stop_reason == "completed" and not from_sse.truncated


def test_responses_stream_without_completed_is_rebuilt_from_deltas() -> None:
    text = fixture_bytes("openai_responses_response.sse").decode()
    events = text.split("\n\n")
    # keep everything up to the second argument delta, drop all `.done` items after it
    cut_at = next(i for i, e in enumerate(events) if "function_call_arguments.delta" in e) + 2
    parsed = openai_responses.parse_response_stream(
        decode_sse("\n\n".join(events[:cut_at]) + "\n\n")
    )
    assert parsed.truncated
    assert parsed.reply is not None
    assert parsed.reply.text == "Running the test suite."
    assert parsed.reply.thinking == "**Running tests**"
    assert (
        parsed.reply.tool_calls[0].arguments
        == '{"command": ["bash", "-lc", "pytest -q"], "timeout_ms": 120000}'
    )


def test_responses_only_deltas_and_a_completed_event_with_empty_output() -> None:
    events = [
        {"type": "response.created", "response": {"model": "gpt-5", "output": []}},
        {"type": "response.output_text.delta", "output_index": 0, "delta": "Hel"},
        {"type": "response.output_text.delta", "output_index": 0, "delta": "lo"},
        {
            "type": "response.completed",
            "response": {
                "model": "gpt-5",
                "output": [],
                "status": "completed",
                "usage": {"input_tokens": 5, "output_tokens": 2},
            },
        },
    ]
    text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    parsed = openai_responses.parse_response_stream(decode_sse(text))
    assert parsed.reply == Turn(role="assistant", text="Hello")
    assert parsed.usage == Usage(5, 2, 0, 0)
    assert parsed.stop_reason == "completed" and not parsed.truncated


def test_responses_errors_and_incomplete() -> None:
    failed = {"output": [], "status": "failed", "error": {"code": "server_error", "message": "x"}}
    assert openai_responses.parse_response_json(failed).error == "server_error: x"
    incomplete = {
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "pa"}]}],
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
    }
    assert openai_responses.parse_response_json(incomplete).stop_reason == "max_output_tokens"
    stream = decode_sse(
        'event: error\ndata: {"type": "error", "code": "rate_limit", "message": "slow"}\n\n'
    )
    parsed = openai_responses.parse_response_stream(stream)
    assert parsed.error == "rate_limit: slow" and parsed.truncated


def test_opencode_title_call_is_a_side_call() -> None:
    """opencode asks for a session title in a leading `developer` message; it is
    housekeeping, not the user's conversation (seen with opencode 1.18.33)."""
    from engram.wire import parse_exchange
    from engram.wire.model import Kind, RawRequest

    body = {
        "model": "gpt-5.4-nano",
        "input": [
            {
                "role": "developer",
                "content": "You are a title generator. You output ONLY a thread title. "
                "Nothing else.\n\n<task>\nGenerate a brief title that would help the user "
                "find this conversation later.\n</task>",
            },
            {"role": "user", "content": "Which port does the staging database listen on?"},
        ],
        "stream": True,
    }
    raw = RawRequest(body=json.dumps(body).encode(), path="/v1/responses", host="x")
    assert parse_exchange(raw, None).kind is Kind.SIDE_CALL
