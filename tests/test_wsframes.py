"""The WebSocket frame parser and permessage-deflate, fuzzed (RFC 6455, RFC 7692).

wsproto (installed with mitmproxy) is the independent reference: what it writes, we must
read, across messages with context takeover, split anywhere; what we write after
rewriting a message, it must read. Arbitrary bytes must only ever give frames or a
`ProtocolError`, within the bounds.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol

from engram.sources import wsframes as ws

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_PATTERN = bytes(range(256)) * 260


def _sized(low: int, high: int) -> st.SearchStrategy[bytes]:
    """Payloads whose *length* is fuzzed (drawing 64 KB of random bytes is slow)."""
    return st.tuples(st.integers(low, high), st.integers(0, 255)).map(
        lambda t: _PATTERN[t[1] : t[1] + t[0]]
    )


payloads = st.one_of(
    st.binary(max_size=300),
    _sized(124, 127),  # around the 7-bit length limit
    _sized(65533, 65538),  # around the 16-bit one
)
frames = st.tuples(
    st.sampled_from([ws.OP_TEXT, ws.OP_BINARY, ws.OP_PING, ws.OP_PONG, ws.OP_CLOSE]), payloads
).filter(lambda f: f[0] in (ws.OP_TEXT, ws.OP_BINARY) or len(f[1]) <= 125)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    return [*pieces, data[last:]]


@FUZZ
@given(st.lists(frames, min_size=1, max_size=6), st.booleans(), st.lists(st.integers(0, 10**6)))
def test_frames_round_trip_split_anywhere(
    spec: list[tuple[int, bytes]], masked: bool, cuts: list[int]
) -> None:
    encoded = [ws.encode_frame(op, payload, masked=masked) for op, payload in spec]
    parser = ws.FrameParser(masked=masked, rsv1=False, max_payload=1 << 20)
    got: list[ws.Frame] = []
    for piece in split(b"".join(encoded), cuts):
        got += parser.feed(piece)
    assert [(f.opcode, f.payload, f.fin) for f in got] == [(op, p, True) for op, p in spec]
    assert [f.raw for f in got] == encoded  # what passes through is exactly what came
    assert parser.buffered == 0


@FUZZ
@given(st.binary(max_size=2000), st.booleans(), st.booleans())
def test_arbitrary_bytes_give_frames_or_a_protocol_error(
    data: bytes, masked: bool, rsv1: bool
) -> None:
    parser = ws.FrameParser(masked=masked, rsv1=rsv1, max_payload=4096)
    reader = ws.MessageReader(
        ws.Inflater(no_context_takeover=False, max_size=8192) if rsv1 else None, 8192
    )
    try:
        for frame in parser.feed(data):
            assert len(frame.payload) <= 4096
            message = reader.add(frame)
            assert message is None or len(message.data) <= 8192
    except ws.ProtocolError:
        pass


def negotiate(**client: object) -> tuple[PerMessageDeflate, PerMessageDeflate, ws.Deflate]:
    c = PerMessageDeflate(**client)  # type: ignore[arg-type]
    s = PerMessageDeflate()
    accepted = s.accept(c.offer())
    assert isinstance(accepted, str)
    c.finalize(accepted)
    deflate = ws.negotiated(f"permessage-deflate; {accepted}" if accepted else "permessage-deflate")
    assert deflate is not None
    return c, s, deflate


texts = st.lists(
    st.one_of(
        st.text(max_size=400),
        st.sampled_from(['{"type":"response.create","input":[]}', "hello " * 200]),
        st.binary(max_size=3000).map(lambda b: b.hex()),
    ),
    min_size=1,
    max_size=8,
)


@FUZZ
@given(texts, st.lists(st.integers(0, 10**6)), st.booleans())
def test_we_read_what_wsproto_compresses_with_context_takeover(
    messages: list[str], cuts: list[int], fragmented: bool
) -> None:
    c, _s, deflate = negotiate(client_max_window_bits=15)
    sender = FrameProtocol(client=True, extensions=[c])
    wire = b""
    for text in messages:
        if fragmented and len(text) > 2:
            half = len(text) // 2
            wire += bytes(sender.send_data(text[:half], fin=False))
            wire += bytes(sender.send_data(text[half:], fin=True))
        else:
            wire += bytes(sender.send_data(text, fin=True))
    parser = ws.FrameParser(masked=True, rsv1=True, max_payload=1 << 20)
    reader = ws.MessageReader(
        ws.Inflater(no_context_takeover=deflate.client_no_context_takeover, max_size=1 << 20),
        1 << 20,
    )
    got = []
    for piece in split(wire, cuts):
        for frame in parser.feed(piece):
            message = reader.add(frame)
            if message is not None:
                got.append(message.data.decode())
    assert got == messages


@FUZZ
@given(texts, st.integers(0, 7), st.booleans(), st.sampled_from([9, 12, 15]))
def test_after_a_rewrite_our_stream_stays_readable_for_the_peer(
    messages: list[str], rewrite_at: int, no_takeover: bool, bits: int
) -> None:
    """What the proxy does to the agent's side: messages as the agent compressed them
    until one is rewritten, then all re-encoded by us; wsproto (the upstream) reads all."""
    c, s, deflate = negotiate(client_max_window_bits=bits, client_no_context_takeover=no_takeover)
    assert deflate.client_no_context_takeover == no_takeover
    agent = FrameProtocol(client=True, extensions=[c])
    upstream = FrameProtocol(client=False, extensions=[s])
    parser = ws.FrameParser(masked=True, rsv1=True, max_payload=1 << 20)
    reader = ws.MessageReader(
        ws.Inflater(no_context_takeover=deflate.client_no_context_takeover, max_size=1 << 20),
        1 << 20,
    )
    deflater: ws.Deflater | None = None
    expected = []
    for index, text in enumerate(messages):
        for frame in parser.feed(bytes(agent.send_data(text, fin=True))):
            message = reader.add(frame)
            assert message is not None
            data = message.data
            if index == rewrite_at:
                data = data + b" +memory"
            expected.append(data.decode())
            if deflater is None and index < rewrite_at:
                upstream.receive_bytes(frame.raw)  # untouched: as received
                continue
            if deflater is None or deflate.client_no_context_takeover:
                deflater = ws.Deflater(
                    window_bits=deflate.client_max_window_bits,
                    no_context_takeover=deflate.client_no_context_takeover,
                )
            upstream.receive_bytes(
                ws.encode_frame(ws.OP_TEXT, deflater.deflate(data), rsv1=True, masked=True)
            )
    got = [f.payload for f in upstream.received_frames()]
    assert got == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("permessage-deflate", ws.Deflate()),
        (
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
            ws.Deflate(server_no_context_takeover=True, client_max_window_bits=10),
        ),
        ('permessage-deflate; server_max_window_bits="12"', ws.Deflate(server_max_window_bits=12)),
    ],
)
def test_negotiated_extension_is_parsed(header: str | None, expected: ws.Deflate | None) -> None:
    assert ws.negotiated(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "x-webkit-deflate-frame",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits",  # a value is required in a response
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; mystery",
    ],
)
def test_other_extensions_are_not_read(header: str) -> None:
    with pytest.raises(ws.Unsupported):
        ws.negotiated(header)


@pytest.mark.parametrize(
    "frame",
    [
        bytes([0x81 | 0x20, 0x00]),  # RSV3
        bytes([0x83, 0x00]),  # reserved opcode 3
        bytes([0x09, 0x00]),  # a fragmented ping
        bytes([0x89, 0x7E, 0x00, 0x80]) + b"x" * 128,  # a ping over 125 bytes
        bytes([0xC1, 0x00]),  # RSV1 without deflate
        bytes([0x81, 0x7F]) + (1 << 63).to_bytes(8, "big"),  # 64-bit length, high bit set
        bytes([0x81, 0x7F]) + (1 << 40).to_bytes(8, "big"),  # past the bound
    ],
)
def test_frames_the_rfc_forbids_are_errors(frame: bytes) -> None:
    with pytest.raises(ws.ProtocolError):
        ws.FrameParser(masked=False, rsv1=False, max_payload=1 << 20).feed(frame)


def test_a_compression_bomb_is_bounded() -> None:
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = c.compress(b"\0" * (64 << 20)) + c.flush(zlib.Z_SYNC_FLUSH)
    frame = ws.encode_frame(ws.OP_BINARY, bomb[:-4], rsv1=True, masked=False)
    reader = ws.MessageReader(ws.Inflater(no_context_takeover=False, max_size=1 << 20), 1 << 20)
    (parsed,) = ws.FrameParser(masked=False, rsv1=True, max_payload=1 << 20).feed(frame)
    with pytest.raises(ws.ProtocolError):
        reader.add(parsed)


def test_masking_is_its_own_inverse() -> None:
    data = os.urandom(100_003)
    mask = os.urandom(4)
    assert ws.apply_mask(mask, ws.apply_mask(mask, data)) == data
    assert ws.apply_mask(mask, data)[:4] == bytes(a ^ b for a, b in zip(data, mask, strict=False))
