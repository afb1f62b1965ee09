"""Tolerant splitting of streamed response bodies into decoded JSON events.

Two stream shapes reach us: Server-Sent Events (Anthropic, OpenAI, Gemini with
`alt=sse`) and Gemini's bare JSON-array stream (`[{...},\\n{...}]` delivered piece by
piece). Capture sources hand us whatever arrived, so a body may use CRLF, omit the space
after `data:`, carry comments, or stop in the middle of an event; the splitter keeps
every complete event and reports the cut instead of failing.

Speed matters (every reply is parsed): whole buffers are split with `str.split`/regex,
and all event payloads are decoded with one `json.loads` of a synthetic array, falling
back to event-by-event decoding only when some payload is broken.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from typing import Any

_ARRAY_SKIP = re.compile(r"[\s,]*")
_DONE = "[DONE]"


# One dispatched event: (the `event:` field or "", the `data:` lines joined with "\n").
# A plain tuple, because streams have thousands of events and object creation shows.
SSEEvent = tuple[str, str]


@dataclass(slots=True)
class SSEStream:
    events: list[SSEEvent] = field(default_factory=list)
    done: bool = False  # a `data: [DONE]` sentinel arrived
    partial: bool = False  # the text ended inside an event (no closing blank line)
    partial_event: bool = False  # ...and that unfinished event is the last of `events`


@dataclass(slots=True)
class JSONStream:
    """Decoded stream payloads: (event name, JSON value) in arrival order."""

    items: list[tuple[str, Any]] = field(default_factory=list)
    done: bool = False  # the stream's own end marker arrived ([DONE] or a closing `]`)
    truncated: bool = False  # cut inside an event: its payload could not be decoded
    skipped: int = 0  # undecodable events before the last one


def _normalise(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _parse_block(block: str) -> SSEEvent | None:
    event = ""
    data: list[str] = []
    for line in block.split("\n"):
        if not line or line[0] == ":":
            continue
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if not data:  # the SSE spec dispatches nothing for an event without data
        return None
    return (event, "\n".join(data))


def _collect(blocks: list[str], into: list[SSEEvent]) -> bool:
    """Append the events of complete blocks; return whether `[DONE]` was among them."""
    done = False
    append = into.append
    for block in blocks:
        # Inline fast paths for the two shapes providers send, `data: X` and
        # `event: E\ndata: X`; comments, ids, multi-line data or a missing space after
        # the colon take `_parse_block`.
        if block.startswith("event: "):
            head, sep, data = block.partition("\ndata: ")
            if sep and "\n" not in data and "\n" not in head:
                if data == _DONE:
                    done = True
                else:
                    append((head[7:], data))
                continue
        elif block.startswith("data: ") and "\n" not in block:
            if block[6:] == _DONE:
                done = True
            else:
                append(("", block[6:]))
            continue
        event = _parse_block(block)
        if event is None:
            continue
        if len(event[1]) < 16 and event[1].strip() == _DONE:
            done = True
        else:
            append(event)
    return done


def _finish(tail: str, stream: SSEStream) -> SSEStream:
    if tail.strip():
        stream.partial = True
        event = _parse_block(tail)
        if event is not None:
            if event[1].strip() == _DONE:
                stream.done = True
            else:
                stream.events.append(event)
                stream.partial_event = True
    return stream


def split_sse(text: str) -> SSEStream:
    """Split a whole SSE body into events; an unfinished last event is kept if it has data."""
    blocks = _normalise(text).split("\n\n")
    tail = blocks.pop() if blocks else ""
    stream = SSEStream()
    stream.done = _collect(blocks, stream.events)
    return _finish(tail, stream)


class SSESplitter:
    """Incremental form of `split_sse` for sources that see the body chunk by chunk.

    Chunks may split anywhere: inside a line, between CR and LF, inside a UTF-8 sequence.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._held_cr = False
        self.done = False

    def feed(self, chunk: bytes | str) -> list[SSEEvent]:
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        if self._held_cr:
            text = "\r" + text
            self._held_cr = False
        if text.endswith("\r"):  # may be the first half of a CRLF
            text = text[:-1]
            self._held_cr = True
        self._buffer += _normalise(text)
        blocks = self._buffer.split("\n\n")  # an event ends at an empty line
        self._buffer = blocks.pop()
        events: list[SSEEvent] = []
        if _collect(blocks, events):
            self.done = True
        return events

    def close(self) -> SSEStream:
        """End of body: return the unfinished event, if any, and whether it was cut."""
        tail = self._buffer + self._decoder.decode(b"", final=True)
        if self._held_cr:
            tail += "\n"
        self._buffer, self._held_cr = "", False
        stream = _finish(_normalise(tail), SSEStream(done=self.done))
        self.done = stream.done
        return stream


def decode_events(stream: SSEStream) -> JSONStream:
    """Decode every event's data as JSON (one `json.loads` for the whole stream if it can)."""
    events = stream.events
    result = JSONStream(done=stream.done)
    if not events:
        result.truncated = stream.partial
        return result
    datas = [data for _, data in events]
    try:
        values = json.loads("[" + ",".join(datas) + "]")
    except (ValueError, RecursionError):
        values = None
    # A payload that is not one JSON value changes the element count (an empty one makes
    # the array invalid), so an equal count means every payload decoded on its own.
    if isinstance(values, list) and len(values) == len(datas):
        result.items = [(name, value) for (name, _), value in zip(events, values, strict=True)]
    else:
        last = len(events) - 1
        for index, (name, data) in enumerate(events):
            try:
                result.items.append((name, json.loads(data)))
            except (ValueError, RecursionError):
                if index == last:
                    result.truncated = True
                else:
                    result.skipped += 1
    if stream.partial and not stream.partial_event:
        result.truncated = True
    return result


def decode_sse(text: str) -> JSONStream:
    return decode_events(split_sse(text))


def decode_json_array(text: str) -> JSONStream:
    """Decode Gemini's JSON-array stream, keeping the elements that arrived whole."""
    decoder = json.JSONDecoder()
    result = JSONStream()
    end = len(text)
    pos = _ARRAY_SKIP.match(text).end()  # type: ignore[union-attr]
    if pos < end and text[pos] == "[":
        pos += 1
    while True:
        pos = _ARRAY_SKIP.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= end:
            result.truncated = True
            break
        if text[pos] == "]":
            result.done = True
            break
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            result.truncated = True
            break
        result.items.append(("", value))
    return result


def decode_stream(text: str) -> JSONStream:
    """Decode a streamed body of either shape, chosen by its first character."""
    if text.lstrip()[:1] == "[":
        return decode_json_array(text)
    return decode_sse(text)
