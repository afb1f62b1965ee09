"""SSE and JSON-array stream splitting: tolerance, truncation, incremental feeding."""

from __future__ import annotations

from wirefixtures import fixture_bytes

from engram.wire.sse import (
    SSESplitter,
    decode_events,
    decode_json_array,
    decode_sse,
    decode_stream,
    split_sse,
)


def test_data_with_and_without_space_event_lines_and_comments() -> None:
    text = (
        ": keep-alive comment\n\n"
        'event: message_start\ndata: {"a": 1}\n\n'
        'data:{"b": 2}\n\n'
        'id: 7\nretry: 100\nevent:ping\ndata:{"c": 3}\n\n'
    )
    stream = split_sse(text)
    assert stream.events == [("message_start", '{"a": 1}'), ("", '{"b": 2}'), ("ping", '{"c": 3}')]
    assert not stream.partial and not stream.done


def test_crlf_and_bare_cr_line_endings() -> None:
    crlf = 'event: x\r\ndata: {"a": 1}\r\n\r\ndata: [DONE]\r\n\r\n'
    cr = 'event: x\rdata: {"a": 1}\r\rdata: [DONE]\r\r'
    for text in (crlf, cr):
        stream = split_sse(text)
        assert stream.events == [("x", '{"a": 1}')]
        assert stream.done and not stream.partial


def test_multi_line_data_is_joined_with_newlines() -> None:
    stream = split_sse('data: {"a":\ndata: 1}\n\n')
    assert stream.events == [("", '{"a":\n1}')]
    assert decode_events(stream).items == [("", {"a": 1})]


def test_done_sentinel_is_not_an_event() -> None:
    decoded = decode_sse('data: {"x": 1}\n\ndata: [DONE]\n\n')
    assert decoded.items == [("", {"x": 1})]
    assert decoded.done and not decoded.truncated


def test_event_without_data_dispatches_nothing() -> None:
    assert split_sse("event: ping\n\n: comment only\n\n").events == []


def test_last_event_without_blank_line_is_kept_when_complete() -> None:
    decoded = decode_sse('data: {"a": 1}\n\ndata: {"b": 2}\n')
    assert decoded.items == [("", {"a": 1}), ("", {"b": 2})]
    assert not decoded.truncated


def test_stream_cut_mid_event_keeps_what_arrived() -> None:
    decoded = decode_sse('data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: {"c": [1, 2')
    assert decoded.items == [("", {"a": 1}), ("", {"b": 2})]
    assert decoded.truncated


def test_stream_cut_inside_event_line_before_data() -> None:
    decoded = decode_sse('data: {"a": 1}\n\nevent: content_bl')
    assert decoded.items == [("", {"a": 1})]
    assert decoded.truncated


def test_broken_event_in_the_middle_is_skipped_not_fatal() -> None:
    decoded = decode_sse('data: {"a": 1}\n\ndata: {oops\n\ndata: {"b": 2}\n\n')
    assert decoded.items == [("", {"a": 1}), ("", {"b": 2})]
    assert decoded.skipped == 1 and not decoded.truncated


def test_payloads_that_are_not_single_values_do_not_misalign() -> None:
    decoded = decode_sse("data: 1, 2\n\ndata: 3\n\n")
    assert decoded.items == [("", 3)]
    assert decoded.skipped == 1


def test_empty_body() -> None:
    decoded = decode_sse("")
    assert decoded.items == [] and not decoded.truncated and not decoded.done


def _feed_all(chunks: list[bytes]) -> tuple[list[tuple[str, str]], bool, bool]:
    splitter = SSESplitter()
    events: list[tuple[str, str]] = []
    for chunk in chunks:
        events += splitter.feed(chunk)
    tail = splitter.close()
    return events + tail.events, tail.done, tail.partial


def test_incremental_splitter_matches_whole_buffer_at_every_split_point() -> None:
    body = fixture_bytes("anthropic_response.sse").replace(b"\n", b"\r\n")
    whole = split_sse(body.decode())
    for cut in range(len(body) + 1):
        events, done, partial = _feed_all([body[:cut], body[cut:]])
        assert events == whole.events, cut
        assert (done, partial) == (whole.done, whole.partial)


def test_incremental_splitter_handles_split_utf8_and_byte_by_byte_feeding() -> None:
    body = 'data: {"t": "naïve — ☕ 𝄞"}\n\ndata: [DONE]\n\n'.encode()
    events, done, partial = _feed_all([body[i : i + 1] for i in range(len(body))])
    assert events == [("", '{"t": "naïve — ☕ 𝄞"}')]
    assert done and not partial


def test_incremental_splitter_reports_unfinished_event_on_close() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b'data: {"a": 1}\n\ndata: {"b"') == [("", '{"a": 1}')]
    tail = splitter.close()
    assert tail.partial and tail.events == [("", '{"b"')]
    assert decode_events(tail).truncated


def test_json_array_stream_complete_and_with_crlf_separators() -> None:
    decoded = decode_json_array('[{"a": 1}\r\n,\r\n{"b": [1, 2]}\n]')
    assert decoded.items == [("", {"a": 1}), ("", {"b": [1, 2]})]
    assert decoded.done and not decoded.truncated
    assert decode_json_array("[]").done


def test_json_array_stream_cut_at_every_point_keeps_whole_elements() -> None:
    text = fixture_bytes("gemini_response_array.json").decode()
    complete = decode_json_array(text)
    assert len(complete.items) == 5 and complete.done
    for cut in range(len(text)):
        decoded = decode_json_array(text[:cut])
        assert decoded.items == complete.items[: len(decoded.items)]
        assert decoded.truncated and not decoded.done


def test_decode_stream_chooses_shape_by_first_character() -> None:
    assert decode_stream(' [{"a": 1}]').items == [("", {"a": 1})]
    assert decode_stream('data: {"a": 1}\n\n').items == [("", {"a": 1})]
