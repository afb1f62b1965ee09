"""Property tests: parse_exchange never raises; streams reassemble to their JSON form."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wirefixtures import (
    ReplySpec,
    anthropic_json,
    anthropic_sse,
    chat_json,
    chat_sse,
    dumps,
    raw_request,
    raw_response,
)

from engram.wire import Exchange, Format, openai_chat, parse_exchange
from engram.wire import anthropic as anthropic_format
from engram.wire.sse import SSESplitter, decode_events

PATHS = {
    Format.ANTHROPIC: "/v1/messages?beta=true",
    Format.OPENAI_CHAT: "/v1/chat/completions",
    Format.OPENAI_RESPONSES: "/v1/responses",
    Format.GEMINI: "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys and values of all four formats, so generated JSON reaches deep into the parsers.
VOCAB = [
    "model",
    "messages",
    "system",
    "content",
    "role",
    "type",
    "text",
    "tool_use",
    "id",
    "name",
    "input",
    "tool_result",
    "tool_use_id",
    "thinking",
    "tool_calls",
    "function",
    "arguments",
    "contents",
    "parts",
    "functionCall",
    "functionResponse",
    "args",
    "response",
    "request",
    "output",
    "instructions",
    "candidates",
    "choices",
    "delta",
    "usage",
    "index",
    "metadata",
    "user_id",
    "message",
    "function_call",
    "reasoning",
    "summary",
    "call_id",
    "assistant",
    "user",
    "model",
    "tool",
    "developer",
    "content_block_delta",
    "content_block_start",
    "message_start",
    "message_delta",
    "text_delta",
    "input_json_delta",
    "partial_json",
    "response.completed",
    "response.output_item.added",
    "response.output_text.delta",
    "output_index",
    "item",
    "finishReason",
    "usageMetadata",
    "systemInstruction",
    "stream",
    "max_tokens",
    "error",
    "session_id",
    "prompt_cache_key",
    "image",
    "document",
    "inlineData",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(VOCAB)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(VOCAB) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=40,
)
formats = st.sampled_from(list(PATHS))


def _check(exchange: Exchange) -> None:
    assert isinstance(exchange, Exchange)
    json.dumps(exchange.to_dict())  # serialisable for the journal


@FAST
@given(fmt=formats, request_body=st.binary(max_size=300), response_body=st.binary(max_size=300))
def test_never_raises_on_arbitrary_bytes(
    fmt: Format, request_body: bytes, response_body: bytes
) -> None:
    _check(parse_exchange(raw_request(PATHS[fmt], request_body), raw_response(response_body)))


@FAST
@given(fmt=formats, request_body=json_values, response_body=json_values)
def test_never_raises_on_arbitrary_json(fmt: Format, request_body: Any, response_body: Any) -> None:
    _check(parse_exchange(raw_request(PATHS[fmt], request_body), raw_response(response_body)))


@FAST
@given(
    fmt=formats,
    events=st.lists(st.tuples(st.sampled_from(["", *VOCAB]), json_values), max_size=8),
    cut=st.integers(min_value=0, max_value=10_000),
)
def test_never_raises_on_arbitrary_streams(
    fmt: Format, events: list[tuple[str, Any]], cut: int
) -> None:
    text = "".join(
        (f"event: {name}\n" if name else "") + f"data: {json.dumps(value)}\n\n"
        for name, value in events
    )
    body = text.encode()[:cut]
    _check(parse_exchange(raw_request(PATHS[fmt], {"model": "m"}), raw_response(body)))
    _check(parse_exchange(raw_request(PATHS[fmt], {"model": "m"}), raw_response(b"[" + body)))


@FAST
@given(path=st.text(max_size=40), host=st.text(max_size=20), body=json_values)
def test_never_raises_on_arbitrary_paths(path: str, host: str, body: Any) -> None:
    _check(parse_exchange(raw_request(path, body, host=host), None))


# ---------------------------------------------------------------- stream == JSON

json_objects = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)
tool_calls = st.lists(
    st.tuples(
        st.text("abcdefgh0123456789", min_size=1, max_size=10), st.sampled_from(VOCAB), json_objects
    ),
    max_size=3,
)
replies = st.builds(
    ReplySpec,
    texts=st.lists(st.text(max_size=60), max_size=3),
    calls=tool_calls,
    thinking=st.text(max_size=40),
    input_tokens=st.integers(0, 10**6),
    output_tokens=st.integers(0, 10**5),
    cache_read=st.integers(0, 10**6),
    cache_creation=st.integers(0, 10**5),
)
sizes = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4)
cut_points = st.lists(st.integers(min_value=0, max_value=100_000), max_size=12)


def _split_feed(body: bytes, cuts: list[int]):  # type: ignore[no-untyped-def]
    """Feed `body` to an SSESplitter in chunks cut at the given byte offsets."""
    points = sorted({c % (len(body) + 1) for c in cuts})
    splitter = SSESplitter()
    events = []
    start = 0
    for point in [*points, len(body)]:
        events += splitter.feed(body[start:point])
        start = point
    tail = splitter.close()
    tail.events[:0] = events
    return decode_events(tail)


@settings(max_examples=200, deadline=None)
@given(spec=replies, sizes=sizes, cuts=cut_points)
def test_anthropic_stream_reassembles_to_json(
    spec: ReplySpec, sizes: list[int], cuts: list[int]
) -> None:
    expected = anthropic_format.parse_response_json(anthropic_json(spec))
    body = anthropic_sse(spec, sizes).encode()
    streamed = anthropic_format.parse_response_stream(_split_feed(body, cuts))
    assert streamed.reply == expected.reply
    assert streamed.usage == expected.usage
    assert streamed.stop_reason == expected.stop_reason
    assert not streamed.truncated and streamed.error is None
    via_exchange = parse_exchange(
        raw_request(PATHS[Format.ANTHROPIC], {"model": "m"}), raw_response(body)
    )
    assert via_exchange.reply == expected.reply and via_exchange.usage == expected.usage


@settings(max_examples=200, deadline=None)
@given(spec=replies, sizes=sizes, cuts=cut_points)
def test_chat_stream_reassembles_to_json(
    spec: ReplySpec, sizes: list[int], cuts: list[int]
) -> None:
    spec.thinking = ""  # chat replies carry no thinking in the standard API
    expected = openai_chat.parse_response_json(chat_json(spec))
    body = chat_sse(spec, sizes).encode()
    streamed = openai_chat.parse_response_stream(_split_feed(body, cuts))
    assert streamed.reply == expected.reply
    assert streamed.usage == expected.usage
    assert streamed.stop_reason == expected.stop_reason
    assert not streamed.truncated
    via_exchange = parse_exchange(
        raw_request(PATHS[Format.OPENAI_CHAT], {"model": "m"}), raw_response(body)
    )
    assert via_exchange.reply == expected.reply and via_exchange.usage == expected.usage


@settings(max_examples=200, deadline=None)
@given(spec=replies, sizes=sizes, data=st.data())
def test_cut_stream_keeps_what_arrived_and_is_truncated(
    spec: ReplySpec, sizes: list[int], data: st.DataObject
) -> None:
    spec.texts = ["".join(spec.texts) or "x"]  # one text block, so its prefix is checkable
    full = anthropic_format.parse_response_json(anthropic_json(spec)).reply
    assert full is not None
    body = anthropic_sse(spec, sizes).encode()
    complete_at = body.rindex(b"}") + 1  # message_stop's payload is whole from here on
    cut = data.draw(st.integers(min_value=0, max_value=len(body)))
    exchange = parse_exchange(
        raw_request(PATHS[Format.ANTHROPIC], {"model": "m"}), raw_response(body[:cut])
    )
    assert exchange.truncated is (cut < complete_at)
    if exchange.reply is not None:
        assert full.text.startswith(exchange.reply.text)
        assert full.thinking.startswith(exchange.reply.thinking)
        assert len(exchange.reply.tool_calls) <= len(full.tool_calls)
        for got, want in zip(exchange.reply.tool_calls, full.tool_calls, strict=False):
            assert (got.id, got.name) == (want.id, want.name)


@FAST
@given(spec=replies, data=st.data())
def test_chat_cut_before_finish_is_truncated(spec: ReplySpec, data: st.DataObject) -> None:
    body = chat_sse(spec).encode()
    finish_at = body.index(b'"finish_reason": "') + 20
    cut = data.draw(st.integers(min_value=0, max_value=finish_at))
    exchange = parse_exchange(
        raw_request(PATHS[Format.OPENAI_CHAT], {"model": "m"}), raw_response(body[:cut])
    )
    assert exchange.truncated


def test_dumps_helper_matches_json() -> None:
    assert json.loads(dumps({"a": [1, "é"]})) == {"a": [1, "é"]}
