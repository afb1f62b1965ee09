"""Format detection by path, host and body shape."""

from __future__ import annotations

import pytest
from wirefixtures import fixture_json, raw_request

from engram.wire.detect import detect_format, endpoint_of, is_side_endpoint, provider_for
from engram.wire.model import Format, RawRequest

A, C, R, G, U = (
    Format.ANTHROPIC,
    Format.OPENAI_CHAT,
    Format.OPENAI_RESPONSES,
    Format.GEMINI,
    Format.UNKNOWN,
)


@pytest.mark.parametrize(
    ("path", "expected", "side"),
    [
        ("/v1/messages", A, False),
        ("/v1/messages?beta=true", A, False),
        ("/v1/messages/count_tokens?beta=true", A, True),
        ("/anthropic/v1/messages", A, False),
        ("/v1/threads/thread_1/messages", U, False),
        ("/v1/chat/completions", C, False),
        ("/chat/completions", C, False),
        ("/compatible-mode/v1/chat/completions", C, False),
        ("/openai/deployments/gpt4/chat/completions?api-version=2024-10-21", C, False),
        ("/v1/responses", R, False),
        ("/responses", R, False),
        ("/backend-api/codex/responses", R, False),
        ("/v1/responses/compact", R, True),
        ("/v1/responses/resp_123", U, False),
        ("/v1beta/models/gemini-2.5-pro:generateContent", G, False),
        ("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", G, False),
        ("/v1internal:generateContent", G, False),
        ("/v1internal:streamGenerateContent?alt=sse", G, False),
        ("/v1beta/models/gemini-2.5-flash:countTokens", G, True),
        ("/v1internal:loadCodeAssist", U, False),
        ("/v1/models", U, False),
        ("/api/event_logging/batch", U, False),
        ("/", U, False),
    ],
)
def test_detect_by_path(path: str, expected: Format, side: bool) -> None:
    request = raw_request(path, {"events": []})
    assert detect_format(request) is expected
    assert is_side_endpoint(endpoint_of(path)) is side


@pytest.mark.parametrize(
    ("fixture", "host", "expected"),
    [
        ("anthropic_request.json", "gateway.local", A),
        ("openai_chat_request.json", "gateway.local", C),
        ("openai_responses_request.json", "gateway.local", R),
        ("gemini_request.json", "gateway.local", G),
        ("code_assist_request.json", "gateway.local", G),
    ],
)
def test_detect_by_body_shape_on_unknown_paths(fixture: str, host: str, expected: Format) -> None:
    request = raw_request("/llm/proxy", fixture_json(fixture), host=host)
    assert detect_format(request) is expected


def test_plain_messages_body_reads_as_chat_unless_anthropic_host() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert detect_format(raw_request("/x", body, host="gateway.local")) is C
    assert detect_format(raw_request("/x", body, host="api.anthropic.com")) is A


@pytest.mark.parametrize("body", [None, b"", b"\x00\xff\xfe binary", b"not json", b"[1, 2]", b"{}"])
def test_unknown_or_unreadable_bodies_never_raise(body: bytes | None) -> None:
    assert detect_format(raw_request("/somewhere", body)) is U


def test_broken_request_objects_never_raise() -> None:
    weird = RawRequest(path=None, host=None, body=b"{")  # type: ignore[arg-type]
    assert detect_format(weird) is U


@pytest.mark.parametrize(
    ("host", "fmt", "expected"),
    [
        ("api.anthropic.com", A, "anthropic"),
        ("api.openai.com", R, "openai"),
        ("chatgpt.com", R, "openai"),
        ("cloudcode-pa.googleapis.com", G, "google"),
        ("dashscope-intl.aliyuncs.com", C, "openai"),
        ("localhost", U, ""),
        ("evilanthropic.com", C, "openai"),
    ],
)
def test_provider(host: str, fmt: Format, expected: str) -> None:
    assert provider_for(host, fmt) == expected
