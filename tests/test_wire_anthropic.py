"""Anthropic Messages: request content mapping, JSON and streamed replies."""

from __future__ import annotations

import json

from wirefixtures import fixture_bytes, fixture_json

from engram.wire import anthropic
from engram.wire.block import wrap_block
from engram.wire.model import ToolCall, ToolResult, Turn, Usage
from engram.wire.sse import decode_sse


def test_request_fixture_maps_every_block_kind() -> None:
    parsed = anthropic.parse_request(fixture_json("anthropic_request.json"))
    assert parsed.model == "claude-sonnet-4-5-20250929"
    assert parsed.stream is True
    assert parsed.session_id == "3f1c9a52-7d1e-4b8a-9c55-0e2d7b6a1f40"
    assert parsed.max_tokens == 32000
    assert "Primary working directory: /home/dev/acme-api" in parsed.system
    assert parsed.system.startswith("You are Claude Code")  # billing header block dropped
    roles = [t.role for t in parsed.turns]
    assert roles == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "system",
        "assistant",
        "user",
    ]
    first, call, result, redacted, read, system, plain, last = parsed.turns
    assert first.text.endswith("The test in tests/test_users.py fails, please fix it.")
    assert "<system-reminder>" in first.text  # kept verbatim; user_words drops it
    assert call.thinking == "Let me run the tests first."
    assert call.tool_calls == (
        ToolCall(
            id="toolu_01A09q90qw90lq917835lq9",
            name="Bash",
            arguments='{"command": "pytest tests/test_users.py -q", '
            '"description": "Run the user tests"}',
        ),
    )
    assert result.text == ""
    assert result.tool_results[0].is_error
    assert result.tool_results[0].call_id == "toolu_01A09q90qw90lq917835lq9"
    assert redacted.thinking == "[redacted thinking]"
    assert read.tool_results == (
        ToolResult(
            "toolu_01B7x", "     1\tdef create(data):\n     2\t    return data['mail']\n\n[image]"
        ),
    )
    assert read.text == "<system-reminder>\nThe file was read.\n</system-reminder>"
    assert system == Turn(role="system", text="The user switched the output style to concise.")
    assert plain.text == "The code reads `mail` but the test sends `email`."
    assert last.text == "[image]\n\n[document: spec.pdf]\n\nUse the field name from the spec."
    assert "iVBOR" not in json.dumps([t.text for t in parsed.turns])


def test_system_string_list_and_engram_block_removal() -> None:
    block = wrap_block("- the API uses email")
    assert anthropic.system_text("Be brief.") == "Be brief."
    assert anthropic.system_text(f"Be brief.\n\n{block}") == "Be brief."
    blocks = [
        {"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "B"},
        {"type": "text", "text": block},
    ]
    assert anthropic.system_text(blocks) == "A\n\nB"
    assert anthropic.system_text(None) == ""
    assert anthropic.system_text(42) == ""


def test_system_message_holding_only_the_block_is_dropped() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": wrap_block("memory")},
        ]
    }
    assert anthropic.parse_request(body).turns == [Turn(role="user", text="hi")]


def test_session_from_user_id_in_both_forms() -> None:
    new = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "sess-1"})
    old = (
        "user_abc123_account_0f0e0d0c-aaaa-bbbb-cccc-111122223333"
        "_session_9e8d7c6b-1111-2222-3333-444455556666"
    )
    assert anthropic.session_from_user_id(new) == "sess-1"
    assert anthropic.session_from_user_id(old) == "9e8d7c6b-1111-2222-3333-444455556666"
    assert anthropic.session_from_user_id("user_plain") is None
    assert anthropic.session_from_user_id("{not json") is None
    assert anthropic.session_from_user_id(17) is None


def test_json_and_streamed_reply_fixtures_agree() -> None:
    from_json = anthropic.parse_response_json(fixture_json("anthropic_response.json"))
    from_sse = anthropic.parse_response_stream(
        decode_sse(fixture_bytes("anthropic_response.sse").decode())
    )
    assert from_sse.reply == from_json.reply
    assert from_sse.usage == from_json.usage == Usage(12, 187, 20480, 1834)
    assert from_sse.stop_reason == from_json.stop_reason == "tool_use"
    assert from_sse.model == from_json.model
    assert not from_sse.truncated and from_sse.stream and from_sse.error is None
    reply = from_json.reply
    assert reply is not None
    assert reply.thinking == "The spec says `email`. I should edit users.py."
    assert reply.tool_calls[0].arguments == json.dumps(
        {
            "file_path": "/home/dev/acme-api/app/users.py",
            "new_string": "data['email']",
            "old_string": "data['mail']",
        },
        sort_keys=True,
    )


def test_error_event_keeps_partial_reply() -> None:
    parsed = anthropic.parse_response_stream(
        decode_sse(fixture_bytes("anthropic_error.sse").decode())
    )
    assert parsed.error == "overloaded_error: Overloaded"
    assert parsed.truncated
    assert parsed.reply is not None and parsed.reply.text == "The spec uses `email`,"


def test_stream_cut_inside_tool_arguments_keeps_raw_text() -> None:
    text = fixture_bytes("anthropic_response.sse").decode()
    events = text.split("\n\n")
    first_piece = next(i for i, e in enumerate(events) if '"partial_json":"{' in e)
    cut = "\n\n".join(events[: first_piece + 1]) + "\n\n" + events[first_piece + 1][:40]
    parsed = anthropic.parse_response_stream(decode_sse(cut))
    assert parsed.truncated
    assert parsed.reply is not None
    call = parsed.reply.tool_calls[0]
    assert call.name == "Edit" and call.arguments.startswith('{"file_path":')
    assert parsed.stop_reason is None


def test_error_body_and_wrong_shapes() -> None:
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert anthropic.parse_response_json(error).error == "rate_limit_error: slow down"
    assert anthropic.parse_response_json([1, 2]).reply is None
    empty = anthropic.parse_response_stream(decode_sse(""))
    assert empty.reply is None and empty.truncated


def test_wrong_types_are_tolerated() -> None:
    body = {
        "model": 5,
        "system": [{"type": "text", "text": 7}, "loose string", None],
        "messages": [
            "bare string message",
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": 3,
                        "content": ["x", {"type": "text", "text": None}, {"type": "weird"}],
                    }
                ],
            },
            {"role": None, "content": {"not": "a list"}},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": None, "name": ["x"], "input": "not json"}],
            },
        ],
    }
    parsed = anthropic.parse_request(body)
    assert parsed.model == "5"
    assert parsed.system == "7\n\nloose string"
    assert parsed.turns[0] == Turn(role="user", text="bare string message")
    assert parsed.turns[1].tool_results == (ToolResult("3", "x\n\n[weird]"),)
    assert parsed.turns[3].tool_calls == (ToolCall("", "", "not json"),)


def test_delta_without_block_start_is_still_collected() -> None:
    events = [
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 3}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "He"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "y"}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2, "input_tokens": 3, "cache_read_input_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    parsed = anthropic.parse_response_stream(decode_sse(text))
    assert parsed.reply == Turn(role="assistant", text="Hey")
    assert parsed.usage == Usage(3, 2, 9, 0)
    assert parsed.stop_reason == "end_turn" and not parsed.truncated
