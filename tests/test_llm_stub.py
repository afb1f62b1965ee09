"""The loopback LLM stub, driven by the real `anthropic` and `openai` SDKs (and `requests`
for Gemini, which has no SDK here): if the SDKs accept its replies, so will the agents
and engram's own parsers that other suites point at it."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
import requests

from tests.support.expect import call_fails
from tests.support.llm_stub import (
    CutStream,
    Delay,
    Empty,
    Fail,
    LLMStub,
    RecordedRequest,
    Reply,
    ToolUse,
    running_stub,
)

TOOL_REPLY = Reply(
    text="Let me read that file now.",
    tool_calls=[ToolUse("read_file", {"path": "/etc/hosts", "lines": [1, 2]})],
)
USER = [{"role": "user", "content": "What is in /etc/hosts?"}]


def fake_key(prefix: str) -> str:
    """Shaped like a real key (so redaction and header code see the real thing), never one."""
    return prefix + secrets.token_urlsafe(30)


@pytest.fixture
def stub() -> Iterator[LLMStub]:
    with running_stub() as running:
        yield running


def claude(stub: LLMStub) -> anthropic.Anthropic:
    # a plain httpx2.Client: the SDK's DefaultHttpxClient mounts env proxies even when
    # trust_env=False, which would send loopback traffic to a developer's proxy
    return anthropic.Anthropic(
        api_key=fake_key("sk-ant-api03-"),
        base_url=stub.url,
        max_retries=0,
        http_client=httpx2.Client(trust_env=False),
    )


def gpt(stub: LLMStub) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=fake_key("sk-proj-"),
        base_url=stub.url + "/v1",
        max_retries=0,
        http_client=httpx2.Client(trust_env=False),
    )


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def sse_data(raw: str) -> list[Any]:
    return [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:")]


# --- Anthropic ---------------------------------------------------------------------------


def test_anthropic_json_reply_with_tool_use(stub: LLMStub) -> None:
    stub.script = TOOL_REPLY
    msg = claude(stub).messages.create(model="claude-sonnet-5", max_tokens=100, messages=USER)
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert msg.content[0].text == "Let me read that file now."
    assert msg.content[1].name == "read_file"
    assert msg.content[1].input == {"path": "/etc/hosts", "lines": [1, 2]}
    assert msg.stop_reason == "tool_use" and msg.model == "claude-sonnet-5"
    assert msg.usage.input_tokens == len(stub.requests[0].body) // 4
    assert msg.usage.output_tokens > 0


def test_anthropic_stream_helper_assembles_text_and_tool_input(stub: LLMStub) -> None:
    stub.script = TOOL_REPLY
    with claude(stub).messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=USER
    ) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) == 6 and "".join(deltas) == "Let me read that file now."
    assert final.content[0].text == "Let me read that file now."
    assert final.content[1].input == {"path": "/etc/hosts", "lines": [1, 2]}
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 0
    assert stub.requests[0].json["stream"] is True


def test_anthropic_raw_stream_event_order_and_beta_path(stub: LLMStub) -> None:
    stub.script = Reply(text="deep thoughts", thinking="hmm let me see")
    events = list(
        claude(stub).messages.create(
            model="claude-opus-4-8",
            max_tokens=100,
            messages=USER,
            stream=True,
            extra_query={"beta": "true"},
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert [e.content_block.type for e in events if e.type == "content_block_start"] == [
        "thinking",
        "text",
    ]
    assert kinds.count("content_block_delta") == 4 + 1 + 2  # thinking words, signature, text
    assert stub.requests[0].path == "/v1/messages?beta=true"
    assert stub.requests[0].api == "anthropic"


def test_anthropic_count_tokens(stub: LLMStub) -> None:
    count = claude(stub).messages.count_tokens(model="claude-sonnet-5", messages=USER)
    assert count.input_tokens == len(stub.requests[0].body) // 4
    assert stub.requests[0].api == "anthropic_count"


def test_anthropic_rate_limit_is_a_rate_limit_error(stub: LLMStub) -> None:
    stub.script = Fail(status=429, headers={"retry-after": "1"}, message="slow down")
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude(stub).messages.create(model="claude-sonnet-5", max_tokens=10, messages=USER)
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.body["error"] == {"type": "rate_limit_error", "message": "slow down"}


def test_cut_stream_drops_the_connection_mid_stream(stub: LLMStub) -> None:
    stub.script = CutStream(after_events=4, reply=TOOL_REPLY)
    seen: list[str] = []
    stream = claude(stub).messages.stream(model="m", max_tokens=10, messages=USER)
    # The SDK must fail (how it wraps the transport error is its own business).
    with call_fails(), stream as s:
        seen.extend(e.type for e in s)
    assert "content_block_start" in seen and "message_stop" not in seen
    chunks: list[object] = []
    with call_fails():
        chunks.extend(gpt(stub).chat.completions.create(model="m", messages=USER, stream=True))
    assert chunks and chunks[-1] is not None


def test_recorded_request_has_headers_and_json(stub: LLMStub) -> None:
    client = claude(stub)
    client.messages.create(
        model="claude-sonnet-5",
        max_tokens=10,
        messages=USER,
        extra_headers={"X-Claude-Code-Session-Id": "abc-123"},
    )
    rec: RecordedRequest = stub.requests[0]
    assert rec.method == "POST" and rec.header("authorization") == f"Bearer {client.api_key}"
    assert rec.header("ANTHROPIC-VERSION")
    assert rec.header("x-claude-code-session-id") == "abc-123"
    assert rec.json == {"model": "claude-sonnet-5", "max_tokens": 10, "messages": USER}
    assert json.loads(rec.body) == rec.json and rec.model == "claude-sonnet-5"


# --- OpenAI Chat Completions -------------------------------------------------------------


def test_chat_json_reply_with_tool_calls(stub: LLMStub) -> None:
    stub.script = TOOL_REPLY
    done = gpt(stub).chat.completions.create(model="gpt-4.1", messages=USER)
    message = done.choices[0].message
    assert message.content == "Let me read that file now."
    assert message.tool_calls[0].function.name == "read_file"
    assert json.loads(message.tool_calls[0].function.arguments)["path"] == "/etc/hosts"
    assert done.choices[0].finish_reason == "tool_calls"
    assert done.usage.prompt_tokens == len(stub.requests[0].body) // 4


def test_chat_stream_splits_text_and_arguments_and_reports_usage(stub: LLMStub) -> None:
    stub.script = TOOL_REPLY
    chunks = list(
        gpt(stub).chat.completions.create(
            model="gpt-4.1", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    text, calls = "", {}
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"name": "", "args": [], "id": None})
                entry["id"] = entry["id"] or call.id
                entry["name"] += call.function.name or ""
                entry["args"].append(call.function.arguments or "")
    assert text == "Let me read that file now."
    assert calls[0]["name"] == "read_file" and calls[0]["id"].startswith("call_")
    assert len([a for a in calls[0]["args"] if a]) >= 3
    assert json.loads("".join(calls[0]["args"])) == {"path": "/etc/hosts", "lines": [1, 2]}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_without_usage_option_and_at_bare_path(stub: LLMStub) -> None:
    raw = http().post(
        stub.url + "/chat/completions",
        stream=True,
        json={"model": "grok-4", "messages": USER, "stream": True},
    )
    assert raw.headers["content-type"] == "text/event-stream"
    lines = [line for line in raw.text.splitlines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    assert all("usage" not in json.loads(line[5:]) for line in lines[:-1])
    assert stub.requests[0].api == "openai_chat"


def test_chat_rate_limit_is_a_rate_limit_error(stub: LLMStub) -> None:
    stub.script = Fail(status=429, headers={"retry-after": "1"})
    with pytest.raises(openai.RateLimitError) as caught:
        gpt(stub).chat.completions.create(model="gpt-4.1", messages=USER)
    assert caught.value.code == "rate_limit_exceeded"


# --- OpenAI Responses --------------------------------------------------------------------


def test_responses_json_reply(stub: LLMStub) -> None:
    stub.script = TOOL_REPLY
    resp = gpt(stub).responses.create(
        model="gpt-5-codex", input="list the files", instructions="be brief"
    )
    assert resp.output_text == "Let me read that file now."
    call = resp.output[1]
    assert call.type == "function_call" and call.name == "read_file"
    assert json.loads(call.arguments) == {"path": "/etc/hosts", "lines": [1, 2]}
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.instructions == "be brief" and resp.status == "completed"


def test_responses_stream_events_and_helper(stub: LLMStub) -> None:
    stub.script = TOOL_REPLY
    client = gpt(stub)
    events = list(client.responses.create(model="gpt-5-codex", input=USER, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    for kind in ("response.output_item.added", "response.output_item.done"):
        assert kinds.count(kind) == 2
    assert kinds.count("response.output_text.delta") == 6
    assert kinds.count("response.function_call_arguments.delta") >= 3
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.usage.output_tokens > 0
    with client.responses.stream(model="gpt-5-codex", input=USER) as stream:
        final = stream.get_final_response()
    assert final.output_text == "Let me read that file now."
    assert json.loads(final.output[1].arguments)["lines"] == [1, 2]


# --- Gemini (no SDK here: shapes checked against the REST documentation) ----------------


def gemini_request(text: str = "hi there") -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def test_gemini_generate_content_json(stub: LLMStub) -> None:
    stub.script = TOOL_REPLY
    body = (
        http()
        .post(stub.url + "/v1beta/models/gemini-2.5-pro:generateContent", json=gemini_request())
        .json()
    )
    parts = body["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "Let me read that file now."}
    assert parts[1]["functionCall"] == {
        "name": "read_file",
        "args": {"path": "/etc/hosts", "lines": [1, 2]},
    }
    assert body["candidates"][0]["finishReason"] == "STOP"
    assert body["modelVersion"] == "gemini-2.5-pro"
    assert body["usageMetadata"]["totalTokenCount"] > body["usageMetadata"]["promptTokenCount"]


def test_gemini_stream_sse_and_json_array(stub: LLMStub) -> None:
    url = stub.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    raw = http().post(url + "?alt=sse", json=gemini_request("tell me a story"))
    assert raw.headers["content-type"] == "text/event-stream" and "\r\n\r\n" in raw.text
    chunks = sse_data(raw.text)
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "ok: tell me a story" and len(chunks) == 5
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    array = http().post(url, json=gemini_request("tell me a story"))
    assert array.headers["content-type"] == "application/json"
    assert array.text.startswith("[{") and [c["candidates"] for c in array.json()] == [
        c["candidates"] for c in chunks
    ]


def test_code_assist_wraps_every_response(stub: LLMStub) -> None:
    request = {"model": "gemini-2.5-pro", "project": "p", "request": gemini_request("hello")}
    single = http().post(stub.url + "/v1internal:generateContent", json=request).json()
    assert single["response"]["candidates"][0]["content"]["parts"] == [{"text": "ok: hello"}]
    streamed = sse_data(
        http().post(stub.url + "/v1internal:streamGenerateContent?alt=sse", json=request).text
    )
    assert streamed and all(set(c) == {"response"} for c in streamed)
    assert streamed[-1]["response"]["modelVersion"] == "gemini-2.5-pro"
    count = (
        http()
        .post(stub.url + "/v1beta/models/gemini-2.5-pro:countTokens", json=gemini_request())
        .json()
    )
    assert count["totalTokens"] > 0
    assert [r.api for r in stub.requests] == ["code_assist", "code_assist", "gemini_count"]


def test_gemini_error_shape(stub: LLMStub) -> None:
    stub.script = Fail(status=429)
    raw = http().post(stub.url + "/v1beta/models/g:generateContent", json=gemini_request())
    assert raw.status_code == 429
    assert raw.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


# --- scripts and faults ------------------------------------------------------------------


def test_default_reply_echoes_the_last_user_turn(stub: LLMStub) -> None:
    client = claude(stub)
    first = client.messages.create(
        model="m",
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>ignore me</system-reminder>"},
                    {"type": "text", "text": "Refactor the parser please"},
                ],
            }
        ],
    )
    assert first.content[0].text == "ok: Refactor the parser please"
    second = client.messages.create(
        model="m",
        max_tokens=10,
        messages=[
            {"role": "user", "content": "Refactor the parser please"},
            {"role": "assistant", "content": first.content[0].text},
            {"role": "user", "content": "Now add tests for every branch of the tokenizer code"},
        ],
    )
    assert second.content[0].text == "ok: Now add tests for every branch of the to"


def test_list_script_runs_in_order_and_repeats_its_last_step(stub: LLMStub) -> None:
    stub.script = [Reply("one"), Reply("two")]
    client = gpt(stub)
    texts = [
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content
        for _ in range(3)
    ]
    assert texts == ["one", "two", "two"]


def test_callable_script_routes_and_its_errors_become_500(stub: LLMStub) -> None:
    def route(req: RecordedRequest) -> Reply | None:
        if req.model == "boom":
            raise ValueError("script bug")
        return Reply(f"{req.api} {req.model}") if req.api == "openai_responses" else None

    stub.script = route
    client = gpt(stub)
    assert client.responses.create(model="gpt-5", input="x").output_text == (
        "openai_responses gpt-5"
    )
    assert (
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content
        == "ok: What is in /etc/hosts?"
    )
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="boom", messages=USER)
    assert isinstance(stub.errors[0], ValueError)


def test_streams_are_flushed_event_by_event() -> None:
    with running_stub(Reply("a b c d e f g h i j"), event_delay=0.05) as stub:
        start = time.monotonic()
        raw = http().post(
            stub.url + "/v1/messages",
            stream=True,
            json={"model": "m", "max_tokens": 5, "messages": USER, "stream": True},
        )
        chunks = raw.iter_content(chunk_size=None)
        first = next(chunks)
        first_at = time.monotonic() - start
        rest = b"".join(chunks)
        total = time.monotonic() - start
    assert first.startswith(b"event: message_start")
    assert b"message_stop" not in first and b"message_stop" in rest
    assert total - first_at > 0.5 and first_at < total / 2  # 15 gaps of 50 ms follow


def test_delay_holds_the_headers() -> None:
    with running_stub(Delay(0.3, then=Reply("late"))) as stub:
        start = time.monotonic()
        done = gpt(stub).chat.completions.create(model="m", messages=USER)
        assert time.monotonic() - start >= 0.3
        assert done.choices[0].message.content == "late"


def test_cut_non_streaming_body_and_empty_reply(stub: LLMStub) -> None:
    stub.script = [CutStream(), Empty(), Empty()]
    with call_fails():
        gpt(stub).chat.completions.create(model="m", messages=USER)
    empty = http().post(stub.url + "/v1/messages", json={"model": "m", "messages": USER})
    assert empty.status_code == 200 and empty.content == b""
    assert empty.headers["content-type"] == "application/json"
    stream = http().post(stub.url + "/v1/responses", json={"input": "x", "stream": True})
    assert stream.headers["content-type"] == "text/event-stream" and stream.content == b""


def test_unknown_path_health_and_bounded_stop() -> None:
    stub = LLMStub(Delay(30)).start()
    assert http().get(stub.url + "/health").status_code == 200
    assert http().post(stub.url + "/v2/nothing", data=b"x").status_code == 404
    assert [(r.api, r.path) for r in stub.requests] == [
        ("health", "/health"),
        ("unknown", "/v2/nothing"),
    ]
    outcome: list[object] = []

    def hang() -> None:  # a request stuck in a 30 s Delay must not hold stop() up
        try:
            outcome.append(http().post(stub.url + "/v1/messages", json={}, timeout=10))
        except requests.RequestException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=hang, daemon=True)
    waiter.start()
    stub.wait_for_requests(3)
    start = time.monotonic()
    stub.stop()
    assert time.monotonic() - start < 5
    waiter.join(timeout=10)
    assert outcome and isinstance(outcome[0], requests.RequestException)


def test_restarts_on_the_same_port() -> None:
    stub = LLMStub(Reply("back")).start()
    url = stub.url
    stub.stop()
    with pytest.raises(requests.ConnectionError):
        http().get(url + "/health", timeout=2)
    with stub:
        assert stub.url == url
        assert (
            http()
            .post(url + "/v1/chat/completions", json={"messages": USER})
            .json()["choices"][0]["message"]["content"]
            == "back"
        )
