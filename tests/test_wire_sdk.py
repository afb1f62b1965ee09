"""Real SDK shapes, no network: the anthropic/openai SDKs talk to an in-process transport.

The SDKs serialise the requests (so detection and request parsing see exactly what an
SDK-based agent sends), and they consume our response fixtures (so the fixtures are
checked against the SDKs' own models and stream accumulators, not just our reading).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from wirefixtures import fixture_bytes, fixture_json

from engram.wire import Format, Kind, RawRequest, RawResponse, parse_exchange

anthropic = pytest.importorskip("anthropic")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx2")

# The SDKs warn about model names they consider old; irrelevant to wire shapes.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FIXTURE = {"messages": "anthropic", "completions": "openai_chat", "responses": "openai_responses"}


class Recorder:
    """An httpx transport handler that answers from fixtures and keeps each exchange."""

    def __init__(self) -> None:
        self.flows: list[tuple[RawRequest, RawResponse]] = []

    def __call__(self, request: Any) -> Any:
        body = json.loads(request.content)
        name = FIXTURE.get(request.url.path.rsplit("/", 1)[1], "")
        if not name:  # count_tokens
            payload = b'{"input_tokens": 42}'
            response = httpx.Response(
                200, content=payload, headers={"content-type": "application/json"}
            )
        elif body.get("stream"):
            payload = fixture_bytes(f"{name}_response.sse")
            response = httpx.Response(
                200, content=payload, headers={"content-type": "text/event-stream"}
            )
        else:
            payload = fixture_bytes(f"{name}_response.json")
            response = httpx.Response(
                200, content=payload, headers={"content-type": "application/json"}
            )
        raw_request = RawRequest(
            headers=list(request.headers.items()),
            body=bytes(request.content),
            host=request.url.host,
            path=request.url.raw_path.decode(),
        )
        self.flows.append((raw_request, RawResponse(status_code=200, body=payload)))
        return response

    def last(self) -> Any:
        return parse_exchange(*self.flows[-1])


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield Recorder()


def _http(recorder: Recorder) -> Any:
    return httpx.Client(transport=httpx.MockTransport(recorder))


ANTHROPIC_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "List the files."},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Listing."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py\nb.py"},
            {"type": "text", "text": "Now open a.py"},
        ],
    },
]


def test_anthropic_sdk_request_and_replies(recorder: Recorder) -> None:
    client = anthropic.Anthropic(
        api_key="sk-test", base_url="https://api.anthropic.com", http_client=_http(recorder)
    )
    params: dict[str, Any] = {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 1024,
        "system": [
            {
                "type": "text",
                "text": "Primary working directory: /srv/app",
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "messages": ANTHROPIC_MESSAGES,
        "tools": [{"name": "Bash", "description": "Run", "input_schema": {"type": "object"}}],
        "metadata": {"user_id": json.dumps({"device_id": "d", "session_id": "s-1"})},
    }
    message = client.messages.create(**params)
    exchange = recorder.last()
    assert exchange.format is Format.ANTHROPIC and exchange.error is None
    assert exchange.kind is Kind.CONVERSATION
    assert exchange.conversation == "s-1" and exchange.project == "/srv/app"
    assert [t.role for t in exchange.turns] == ["user", "assistant", "user"]
    assert exchange.turns[1].tool_calls[0].arguments == '{"command": "ls"}'
    assert exchange.turns[2].tool_results[0].content == "a.py\nb.py"
    assert exchange.turns[2].text == "Now open a.py"
    reply = exchange.reply
    assert reply is not None
    assert reply.text == message.content[1].text
    assert reply.thinking == message.content[0].thinking
    assert json.loads(reply.tool_calls[0].arguments) == message.content[2].input

    with client.messages.stream(**params) as stream:
        final = stream.get_final_message()
    streamed = recorder.last()
    assert final.model_dump() == message.model_dump()  # the SSE fixture is faithful
    assert streamed.stream and not streamed.truncated
    assert streamed.reply == reply and streamed.usage == exchange.usage
    assert streamed.usage.output_tokens == final.usage.output_tokens

    client.messages.count_tokens(model=params["model"], messages=ANTHROPIC_MESSAGES)
    counted = recorder.last()
    assert counted.format is Format.ANTHROPIC and counted.kind is Kind.SIDE_CALL
    assert counted.endpoint.endswith("/messages/count_tokens") and counted.error is None


def test_openai_chat_sdk_request_and_replies(recorder: Recorder) -> None:
    client = openai.OpenAI(
        api_key="sk-test", base_url="https://api.openai.com/v1", http_client=_http(recorder)
    )
    params: dict[str, Any] = {
        "model": "gpt-4.1",
        "messages": fixture_json("openai_chat_request.json")["messages"],
        "tools": fixture_json("openai_chat_request.json")["tools"],
    }
    completion = client.chat.completions.create(**params)
    exchange = recorder.last()
    assert exchange.format is Format.OPENAI_CHAT and exchange.error is None
    assert [t.role for t in exchange.turns] == ["user", "assistant", "tool", "tool", "user"]
    reply = exchange.reply
    assert reply is not None
    assert reply.text == completion.choices[0].message.content
    sdk_call = completion.choices[0].message.tool_calls[0]
    assert (reply.tool_calls[0].id, reply.tool_calls[0].name) == (
        sdk_call.id,
        sdk_call.function.name,
    )
    assert json.loads(reply.tool_calls[0].arguments) == json.loads(sdk_call.function.arguments)

    with client.chat.completions.stream(**params) as stream:
        final = stream.get_final_completion()
    streamed = recorder.last()
    assert final.choices[0].message.content == completion.choices[0].message.content
    assert final.choices[0].message.tool_calls[0].function.arguments == sdk_call.function.arguments
    assert streamed.reply == reply and streamed.usage == exchange.usage
    assert streamed.stream and not streamed.truncated


def test_openai_responses_sdk_request_and_replies(recorder: Recorder) -> None:
    client = openai.OpenAI(
        api_key="sk-test", base_url="https://api.openai.com/v1", http_client=_http(recorder)
    )
    request = fixture_json("openai_responses_request.json")
    params: dict[str, Any] = {
        k: request[k] for k in ("model", "instructions", "input", "tools", "prompt_cache_key")
    }
    response = client.responses.create(**params)
    exchange = recorder.last()
    assert exchange.format is Format.OPENAI_RESPONSES and exchange.error is None
    assert exchange.conversation == "0199a2c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
    assert exchange.project == "/home/dev/shop"
    reply = exchange.reply
    assert reply is not None and reply.text == response.output_text

    with client.responses.stream(**params) as stream:
        final = stream.get_final_response()
    streamed = recorder.last()
    assert final.output_text == response.output_text
    sdk_call = final.output[2]
    assert (streamed.reply.tool_calls[0].id, streamed.reply.tool_calls[0].name) == (
        sdk_call.call_id,
        sdk_call.name,
    )
    assert streamed.reply == reply and streamed.usage == exchange.usage
    assert (
        streamed.usage.input_tokens + streamed.usage.cache_read_tokens == final.usage.input_tokens
    )
