"""Gemini generateContent / streamGenerateContent, plain and Code Assist-wrapped."""

from __future__ import annotations

import json

from wirefixtures import fixture_bytes, fixture_json

from engram.wire import gemini
from engram.wire.block import wrap_block
from engram.wire.model import ToolCall, ToolResult, Turn, Usage
from engram.wire.sse import decode_json_array, decode_sse

STREAM_PATH = "/v1beta/models/gemini-2.5-pro:streamGenerateContent"


def test_request_fixture() -> None:
    parsed = gemini.parse_request(fixture_json("gemini_request.json"), STREAM_PATH)
    assert parsed.model == "gemini-2.5-pro" and parsed.stream
    assert (
        parsed.system
        == "You are an interactive CLI agent specializing in software engineering tasks."
    )
    assert [t.role for t in parsed.turns] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "user",
    ]
    call = parsed.turns[3]
    assert call.thinking == "Let me look at the file first."
    assert call.tool_calls == (
        ToolCall("read-1", "read_file", '{"absolute_path": "/home/dev/garden/main.go"}'),
    )
    assert parsed.turns[4].tool_results == (
        ToolResult("read-1", 'package main\nfunc main() { fmt.Println("hi") }\n'),
    )
    assert parsed.turns[5].text == "Here is a screenshot\n[image]"
    assert not parsed.structured_only


def test_code_assist_request_is_unwrapped() -> None:
    parsed = gemini.parse_request(
        fixture_json("code_assist_request.json"), "/v1internal:streamGenerateContent"
    )
    assert parsed.model == "gemini-2.5-pro"
    assert parsed.session_id == "5b0e7c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b"
    assert len(parsed.turns) == 6
    body = fixture_json("code_assist_request.json")
    del body["request"]["session_id"]
    assert gemini.parse_request(body, "").session_id == "5b0e7c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b"


def test_snake_case_string_system_roles_and_ids() -> None:
    body = {
        "system_instruction": f"Be careful.\n\n{wrap_block('m')}",
        "contents": [
            {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
            {"role": "model", "parts": [{"function_call": {"name": "ls", "args": {"d": "."}}}]},
            {
                "role": "function",
                "parts": [{"function_response": {"name": "ls", "response": {"error": "denied"}}}],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "x", "response": {"n": 1}}},
                    {"fileData": {"fileUri": "gs://b/f.pdf"}},
                ],
            },
            "loose text",
            {"role": "system", "parts": [{"text": wrap_block("m")}]},
        ],
        "generation_config": {"max_output_tokens": 64, "response_schema": {"type": "object"}},
    }
    parsed = gemini.parse_request(
        body, "/v1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:generateContent"
    )
    assert parsed.system == "Be careful."
    assert parsed.model == "gemini-2.0-flash" and not parsed.stream
    assert parsed.max_tokens == 64 and parsed.structured_only
    assert parsed.turns == [
        Turn("user", "ab"),
        Turn("assistant", tool_calls=(ToolCall("ls", "ls", '{"d": "."}'),)),
        Turn("tool", tool_results=(ToolResult("ls", "denied", is_error=True),)),
        Turn("user", "[file: gs://b/f.pdf]", tool_results=(ToolResult("x", '{"n": 1}'),)),
        Turn("user", "loose text"),
    ]


def test_json_sse_array_and_code_assist_replies_agree() -> None:
    from_json = gemini.parse_response_json(fixture_json("gemini_response.json"))
    from_sse = gemini.parse_response_stream(
        decode_sse(fixture_bytes("gemini_response.sse").decode())
    )
    from_array = gemini.parse_response_stream(
        decode_json_array(fixture_bytes("gemini_response_array.json").decode())
    )
    from_code_assist = gemini.parse_response_stream(
        decode_sse(fixture_bytes("code_assist_response.sse").decode())
    )
    expected = Turn(
        role="assistant",
        text="`fmt` is used but never imported. I'll add the import.",
        tool_calls=(
            ToolCall(
                "replace",
                "replace",
                json.dumps(
                    {
                        "file_path": "/home/dev/garden/main.go",
                        "new_string": 'import "fmt"\n\nfunc main()',
                        "old_string": "func main()",
                    },
                    sort_keys=True,
                ),
            ),
        ),
        thinking="The file uses fmt without importing it.",
    )
    for parsed in (from_json, from_sse, from_array, from_code_assist):
        assert parsed.reply == expected
        assert parsed.usage == Usage(8123 - 6000, 64 + 103, 6000, 0)
        assert parsed.stop_reason == "STOP"
        assert parsed.model == "gemini-2.5-pro"
        assert not parsed.truncated
    assert gemini.parse_response_json(fixture_json("gemini_response_array.json")).reply == expected


def test_stream_without_finish_reason_is_truncated() -> None:
    text = fixture_bytes("gemini_response_array.json").decode()
    cut = decode_json_array(text[: text.rindex('"functionCall"')])
    parsed = gemini.parse_response_stream(cut)
    assert parsed.truncated
    assert parsed.reply is not None and parsed.reply.text.startswith("`fmt` is used")


def test_errors_and_blocked_prompts() -> None:
    error = {
        "error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}
    }
    assert gemini.parse_response_json(error).error == "RESOURCE_EXHAUSTED: Resource exhausted"
    assert gemini.parse_response_json([error]).error == "RESOURCE_EXHAUSTED: Resource exhausted"
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 5},
    }
    parsed = gemini.parse_response_json(blocked)
    assert parsed.reply is None and parsed.stop_reason == "SAFETY"
    assert parsed.usage == Usage(5, 0, 0, 0)
