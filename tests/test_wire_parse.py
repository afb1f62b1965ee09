"""parse_exchange: Exchange fields, kinds, conversation keys, projects, failures."""

from __future__ import annotations

import copy
import json

import pytest
from wirefixtures import (
    PROJECT,
    SESSION_ID,
    claude_code_raw,
    claude_code_request,
    fixture_bytes,
    fixture_json,
    raw_request,
    raw_response,
)

from engram.wire import Exchange, Format, Kind, RawRequest, RawResponse, parse_exchange
from engram.wire.block import BLOCK_OPEN
from engram.wire.injection import inject

CHAT = "/v1/chat/completions"


def _anthropic(body: dict[str, object], headers: list[tuple[str, str]] | None = None) -> Exchange:
    return parse_exchange(raw_request("/v1/messages", body, headers=headers or []), None)


def _user(text: str, system: str = "You are helpful.") -> dict[str, object]:
    return {
        "model": "claude-haiku-4-5",
        "system": system,
        "messages": [{"role": "user", "content": text}],
    }


def test_exchange_fields_from_a_claude_code_flow() -> None:
    exchange = parse_exchange(
        claude_code_raw(), raw_response(fixture_bytes("anthropic_response.sse"))
    )
    assert exchange.error is None
    assert exchange.format is Format.ANTHROPIC
    assert exchange.provider == "anthropic"
    assert exchange.host == "api.anthropic.com"
    assert exchange.endpoint == "/v1/messages"
    assert exchange.kind is Kind.CONVERSATION
    assert exchange.conversation == SESSION_ID
    assert exchange.project == PROJECT
    assert exchange.model == "claude-sonnet-4-5-20250929"
    assert len(exchange.turns) == 30
    assert exchange.reply is not None and exchange.reply.tool_calls[0].name == "Edit"
    assert exchange.stop_reason == "tool_use"
    assert exchange.status_code == 200
    assert exchange.stream and not exchange.truncated
    assert (exchange.started_at, exchange.ended_at) == (1000.0, 1002.5)
    assert Exchange.from_dict(json.loads(json.dumps(exchange.to_dict()))) == exchange


def test_a_body_parsed_by_the_caller_reads_the_same() -> None:
    """The proxy's recall step hands the body it walked (wire/splice.py) to the parser."""
    from engram.wire.splice import walk

    raw = claude_code_raw()
    assert raw.body is not None
    walked = walk(raw.body, Format.ANTHROPIC)
    assert walked is not None
    response = raw_response(fixture_bytes("anthropic_response.sse"))
    given = parse_exchange(raw, response, request_json=walked.value)
    assert given == parse_exchange(raw, response)


def test_injected_request_parses_like_the_original() -> None:
    body = claude_code_request()
    original = parse_exchange(claude_code_raw(body), None)
    injected = parse_exchange(claude_code_raw(inject(body, Format.ANTHROPIC, "- use email")), None)
    assert injected.system == original.system and BLOCK_OPEN not in injected.system
    assert injected.turns == original.turns
    for fixture, path, fmt in [
        ("openai_chat_request.json", CHAT, Format.OPENAI_CHAT),
        ("openai_responses_request.json", "/v1/responses", Format.OPENAI_RESPONSES),
        ("gemini_request.json", "/v1beta/models/g:generateContent", Format.GEMINI),
        ("code_assist_request.json", "/v1internal:generateContent", Format.GEMINI),
    ]:
        plain = fixture_json(fixture)
        a = parse_exchange(raw_request(path, plain), None)
        b = parse_exchange(raw_request(path, inject(copy.deepcopy(plain), fmt, "- m")), None)
        assert (a.system, a.turns, a.conversation) == (b.system, b.turns, b.conversation), fixture


# ------------------------------------------------------------------------------ kinds


def test_internal_header_wins() -> None:
    exchange = _anthropic(_user("hello"), headers=[("x-engram-internal", "1")])
    assert exchange.kind is Kind.INTERNAL


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/messages/count_tokens",
            {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        ),
        ("/v1beta/models/gemini-2.5-pro:countTokens", {"contents": [{"parts": [{"text": "x"}]}]}),
        ("/v1/responses/compact", {"model": "gpt-5", "input": "x"}),
    ],
)
def test_side_endpoints(path: str, body: dict[str, object]) -> None:
    exchange = parse_exchange(raw_request(path, body), None)
    assert exchange.kind is Kind.SIDE_CALL and exchange.error is None


@pytest.mark.parametrize(
    "body",
    [
        _user(
            "Fix the bug",
            system="You are Claude Code, Anthropic's official CLI for Claude.\n"
            "Analyze if this message indicates a new conversation topic. If it does, extract "
            "a 2-3 word title that captures the new topic.",
        ),
        _user(
            "[user: fix the bug]",
            system="Generate a concise, sentence-case title (3-7 words) "
            "that captures the main topic or goal of this coding session.",
        ),
        _user("Please write a 5-10 word title for the following conversation:\n\nUser: hi"),
        _user("Suggest a short title for this chat.", system="Write a title for the chat below."),
        {
            "model": "m",
            "system": "sys",
            "messages": [
                {"role": "user", "content": "Fix the bug"},
                {"role": "assistant", "content": "Done."},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "Your task is to create a detailed summary of the "
                            "conversation so far, paying close attention to the user's "
                            "explicit requests.",
                        }
                    ],
                },
            ],
        },
        _user(
            "This session is being continued from a previous conversation that ran out of "
            "context. The conversation is summarized below:"
        ),
        _user("Warmup"),
        _user(
            "<policy_spec>...</policy_spec>\nCommand: git status",
            system="Your task is to "
            "process Bash commands that an AI coding agent wants to run.\n\nThis policy spec",
        ),
        _user(
            "Command: git diff\nOutput: ...",
            system="Extract any file paths that this "
            'command reads or modifies. For commands like "git diff" and "cat"...',
        ),
        _user("[SUGGESTION MODE: Suggest what the user might type next.]"),
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]},
        {"model": "m", "system": "only a system prompt", "messages": []},
        {"model": "m", "messages": [{"role": "assistant", "content": "prefill"}]},
    ],
)
def test_side_call_prompts(body: dict[str, object]) -> None:
    assert _anthropic(body).kind is Kind.SIDE_CALL


def test_long_agent_prompts_mentioning_titles_stay_conversation() -> None:
    system = "Create a pull request with a short title when asked.\n" + "More guidance.\n" * 400
    assert _anthropic(_user("Add logging", system=system)).kind is Kind.CONVERSATION


def test_summary_phrase_only_counts_in_the_last_user_turn() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": "This session is being continued from a previous conversation.",
            },
            {"role": "assistant", "content": "Continuing."},
            {"role": "user", "content": "Now add tests."},
        ],
    }
    assert _anthropic(body).kind is Kind.CONVERSATION


def test_stateful_responses_continuation_without_user_turn_is_conversation() -> None:
    body = {
        "model": "gpt-5",
        "previous_response_id": "resp_1",
        "input": [{"type": "function_call_output", "call_id": "c1", "output": "ok"}],
    }
    assert parse_exchange(raw_request("/v1/responses", body), None).kind is Kind.CONVERSATION
    body.pop("previous_response_id")
    assert parse_exchange(raw_request("/v1/responses", body), None).kind is Kind.SIDE_CALL


def test_codex_and_gemini_side_calls() -> None:
    compact = raw_request(
        "/v1/responses",
        {"model": "gpt-5", "input": "history"},
        headers=[("x-openai-subagent", "compact")],
    )
    assert parse_exchange(compact, None).kind is Kind.SIDE_CALL
    review = raw_request(
        "/v1/responses",
        {"model": "gpt-5", "input": "review this"},
        headers=[("x-openai-subagent", "review")],
    )
    assert parse_exchange(review, None).kind is Kind.CONVERSATION
    checkpoint = {
        "model": "gpt-5",
        "input": [
            {
                "role": "user",
                "content": "You are performing a "
                "CONTEXT CHECKPOINT COMPACTION. Create a handoff summary.",
            }
        ],
    }
    assert parse_exchange(raw_request("/responses", checkpoint), None).kind is Kind.SIDE_CALL
    next_speaker = {
        "contents": [{"role": "user", "parts": [{"text": "Who speaks next?"}]}],
        "generationConfig": {"responseJsonSchema": {"type": "object"}},
    }
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    assert parse_exchange(raw_request(path, next_speaker), None).kind is Kind.SIDE_CALL


# ------------------------------------------------------------------ conversation keys


def test_conversation_key_sources_in_order() -> None:
    body = claude_code_request(n_messages=3, session_id="from-metadata")
    with_header = raw_request("/v1/messages", body, headers=[("X-Claude-Code-Session-Id", "hdr")])
    assert parse_exchange(with_header, None).conversation == "hdr"
    assert _anthropic(body).conversation == "from-metadata"
    legacy = dict(body, metadata={"user_id": "user_ab_account_cd_session_9e8d-7c6b"})
    assert _anthropic(legacy).conversation == "9e8d-7c6b"
    codex = raw_request(
        "/v1/responses", {"input": "x", "prompt_cache_key": "pck"}, headers=[("session_id", "sess")]
    )
    assert parse_exchange(codex, None).conversation == "sess"
    codex_thread = raw_request(
        "/responses", {"input": "x"}, headers=[("session-id", "root"), ("thread-id", "child")]
    )
    assert parse_exchange(codex_thread, None).conversation == "child"
    no_header = raw_request("/v1/responses", {"input": "x", "prompt_cache_key": "pck"})
    assert parse_exchange(no_header, None).conversation == "pck"
    code_assist = raw_request(
        "/v1internal:generateContent", fixture_json("code_assist_request.json")
    )
    assert parse_exchange(code_assist, None).conversation == "5b0e7c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b"


def test_hashed_key_is_stable_across_requests_of_one_conversation() -> None:
    first = {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": "You are aider.\nToday's date: 2026-11-21"},
            {"role": "user", "content": "Add a CLI flag."},
        ],
    }
    later = copy.deepcopy(first)
    later["messages"][0]["content"] = "You are aider.\nToday's date: 2026-11-22"
    later["messages"] += [
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "Thanks, now tests."},
    ]
    injected = inject(copy.deepcopy(later), Format.OPENAI_CHAT, "- memory")
    keys = {
        parse_exchange(raw_request(CHAT, b), None).conversation for b in (first, later, injected)
    }
    assert len(keys) == 1
    key = keys.pop()
    assert key.startswith("h-") and len(key) == 18
    other = copy.deepcopy(first)
    other["messages"][1]["content"] = "Remove the CLI flag."
    assert parse_exchange(raw_request(CHAT, other), None).conversation != key


def test_hashed_key_skips_harness_preambles() -> None:
    def body(prompt: str) -> dict[str, object]:
        return {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {
                            "text": "This is the Gemini CLI. We are setting up the "
                            "context for our chat.\nI'm currently working in "
                            "the directory: /p"
                        }
                    ],
                },
                {"role": "model", "parts": [{"text": "Got it."}]},
                {"role": "user", "parts": [{"text": prompt}]},
            ]
        }

    path = "/v1beta/models/g:streamGenerateContent"
    one = parse_exchange(raw_request(path, body("First task")), None).conversation
    two = parse_exchange(raw_request(path, body("Second task")), None).conversation
    assert one != two


# --------------------------------------------------------------------------- project


def test_project_from_each_agent_and_hint_fallback() -> None:
    codex = parse_exchange(
        raw_request("/v1/responses", fixture_json("openai_responses_request.json")), None
    )
    assert codex.project == "/home/dev/shop"
    gemini = parse_exchange(
        raw_request("/v1internal:generateContent", fixture_json("code_assist_request.json")), None
    )
    assert gemini.project == "/home/dev/garden"
    hinted = parse_exchange(
        raw_request(CHAT, fixture_json("openai_chat_request.json")), None, project_hint="/from/hint"
    )
    assert hinted.project == "/from/hint"
    stated = parse_exchange(claude_code_raw(), None, project_hint="/from/hint")
    assert stated.project == PROJECT
    quoted = _user("Working directory: /not/a/preamble, can you explain?")
    assert _anthropic(quoted).project is None


# ------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (None, "request body is empty"),
        (b"", "request body is empty"),
        (b"   \n", "request body is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "request body is not JSON"),
        (b"{not json", "request body is not JSON"),
        (b"[1, 2, 3]", "request body is not a JSON object"),
        (b'"just a string"', "request body is not a JSON object"),
        (b"[" * 100_000, "request body is nested too deeply"),
    ],
)
def test_unreadable_request_bodies(body: bytes | None, error: str) -> None:
    exchange = parse_exchange(
        raw_request("/v1/messages", body), raw_response(fixture_bytes("anthropic_response.json"))
    )
    assert exchange.format is Format.ANTHROPIC
    assert exchange.error == error
    assert exchange.reply is not None  # the response is still read
    assert exchange.conversation == ""  # nothing to key it by
    with_header = raw_request("/v1/messages", body, headers=[("X-Claude-Code-Session-Id", "s")])
    assert parse_exchange(with_header, None).conversation == "s"


def test_unknown_endpoint() -> None:
    exchange = parse_exchange(raw_request("/v1/models", None), raw_response(b'{"data": []}'))
    assert exchange.format is Format.UNKNOWN and exchange.error == "request body is empty"
    other = parse_exchange(raw_request("/telemetry", {"events": [1]}), None)
    assert other.format is Format.UNKNOWN and other.error == "unrecognised request format"
    internal = parse_exchange(raw_request("/x", b"", headers=[("X-Engram-Internal", "1")]), None)
    assert internal.kind is Kind.INTERNAL


def test_http_error_and_broken_responses() -> None:
    body = _user("hello")
    error = raw_response(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529
    )
    exchange = parse_exchange(raw_request("/v1/messages", body), error)
    assert exchange.error == "HTTP 529: overloaded_error: Overloaded"
    assert exchange.reply is None and exchange.status_code == 529
    cut = parse_exchange(
        raw_request("/v1/messages", body), raw_response(b'{"id": "msg_1", "content": [{"ty')
    )
    assert cut.error == "response body is not JSON" and cut.truncated
    html = raw_response(b"<html><body>502 Bad Gateway</body></html>", 502)
    gateway = parse_exchange(raw_request("/v1/messages", body), html)
    assert gateway.error == "HTTP 502: response body is neither JSON nor a stream"
    assert not gateway.stream and gateway.reply is None
    empty = parse_exchange(raw_request("/v1/messages", body), raw_response(b"", 503))
    assert empty.error == "HTTP 503" and empty.truncated
    missing = parse_exchange(
        raw_request("/v1/messages", body), RawResponse(status_code=200, body=None)
    )
    assert missing.reply is None and missing.error is None and missing.status_code == 200


def test_request_object_with_wrong_attribute_types() -> None:
    weird = RawRequest(host=None, path=None, body=b"{}", headers=[])  # type: ignore[arg-type]
    exchange = parse_exchange(weird, None)
    assert exchange.format is Format.UNKNOWN and exchange.error is not None
    broken = RawRequest(headers=None, body=b"{}", path="/v1/messages")  # type: ignore[arg-type]
    assert parse_exchange(broken, None).error is not None
