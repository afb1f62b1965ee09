"""WebSocket framing (RFC 6455) and permessage-deflate (RFC 7692), for a proxy that
splices a connection through and reads (and sometimes rewrites) what passes.

The proxy is a man in the middle of one negotiated connection: both ends agreed on the
extension parameters in the upgrade response it forwarded, so it decodes with exactly
those (context takeover included: each direction is one DEFLATE stream across
messages). Rewriting a client message means compressing it ourselves; from then on the
server's decompressor has seen our plaintext, not the client's compressor's, so every
later client message must be re-encoded by us too (`Deflater`; see
`ws_proxy.ClientSide`). Parsing is incremental (bytes arrive in arbitrary pieces) and
strict about what the RFC forbids; every size is bounded.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass, field

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA = (OP_TEXT, OP_BINARY)
_CONTROL = (OP_CLOSE, OP_PING, OP_PONG)
_TAIL = b"\x00\x00\xff\xff"  # what RFC 7692 strips from the end of each message


class ProtocolError(Exception):
    """The bytes are not a valid WebSocket stream (or exceed a bound)."""


class Unsupported(Exception):
    """Negotiated extensions engram cannot read: the connection is passed through as is."""


@dataclass(frozen=True, slots=True)
class Deflate:
    """permessage-deflate as the server's 101 accepted it."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15


_PARAM = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*(?:=\s*\"?([0-9]+)\"?)?\s*$")


def negotiated(header: str | None) -> Deflate | None:
    """The extension the server agreed to in `Sec-WebSocket-Extensions`: None for none,
    a `Deflate`; any other extension (or a malformed one) raises `Unsupported`."""
    if not header or not header.strip():
        return None
    offers = [o for o in header.split(",") if o.strip()]
    if len(offers) != 1:
        raise Unsupported(f"several extensions: {header}")
    name, *params = offers[0].split(";")
    if name.strip().lower() != "permessage-deflate":
        raise Unsupported(f"extension {name.strip()}")
    values: dict[str, int | None] = {}
    for param in params:
        found = _PARAM.match(param)
        if not found:
            raise Unsupported(f"malformed parameter {param!r}")
        key = found.group(1).lower()
        if key in values:
            raise Unsupported(f"repeated parameter {key}")
        values[key] = int(found.group(2)) if found.group(2) else None
    bits: dict[str, int] = {}
    for key in ("server_max_window_bits", "client_max_window_bits"):
        if key in values:
            value = values.pop(key)
            if value is None or not 8 <= value <= 15:
                raise Unsupported(f"{key}={value}")
            bits[key] = value
    flags: dict[str, bool] = {}
    for key in ("server_no_context_takeover", "client_no_context_takeover"):
        flags[key] = key in values
        if values.pop(key, None) is not None:
            raise Unsupported(f"{key} takes no value")
    if values:
        raise Unsupported(f"unknown parameters {sorted(values)}")
    return Deflate(
        server_no_context_takeover=flags["server_no_context_takeover"],
        client_no_context_takeover=flags["client_no_context_takeover"],
        **bits,
    )


@dataclass(slots=True)
class Frame:
    fin: bool
    rsv1: bool
    opcode: int
    payload: bytes  # unmasked
    raw: bytes  # the frame exactly as it was received

    @property
    def control(self) -> bool:
        return self.opcode in _CONTROL


def apply_mask(mask: bytes, data: bytes) -> bytes:
    """XOR with the 4-byte key, as one big-integer operation (~1 GB/s, not per byte)."""
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class FrameParser:
    """Incremental frame parser for one direction. `masked` says what the RFC requires
    of that direction (client frames are masked, server frames are not); `rsv1` whether
    permessage-deflate was negotiated (RSV1 then marks a compressed message)."""

    def __init__(self, *, masked: bool, rsv1: bool, max_payload: int) -> None:
        self.masked = masked
        self.rsv1 = rsv1
        self.max_payload = max_payload
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _next(self) -> Frame | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, rsv1, opcode = bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F
        if b0 & 0x30:
            raise ProtocolError("RSV2/RSV3 set without an extension that defines them")
        if rsv1 and not self.rsv1:
            raise ProtocolError("RSV1 set without permessage-deflate")
        if opcode not in (OP_CONTINUATION, *_DATA, *_CONTROL):
            raise ProtocolError(f"reserved opcode {opcode:#x}")
        masked = bool(b1 & 0x80)
        if masked != self.masked:
            raise ProtocolError("client frames must be masked, server frames must not")
        length = b1 & 0x7F
        pos = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length = struct.unpack_from("!H", buf, 2)[0]
            pos = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length = struct.unpack_from("!Q", buf, 2)[0]
            if length >> 63:
                raise ProtocolError("64-bit length with the high bit set")
            pos = 10
        if opcode in _CONTROL:
            if not fin:
                raise ProtocolError("fragmented control frame")
            if length > 125:
                raise ProtocolError("control frame payload over 125 bytes")
            if rsv1:
                raise ProtocolError("RSV1 on a control frame")
        if length > self.max_payload:
            raise ProtocolError(f"frame of {length} bytes exceeds {self.max_payload}")
        mask = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            mask = bytes(buf[pos : pos + 4])
            pos += 4
        end = pos + length
        if len(buf) < end:
            return None
        payload = bytes(buf[pos:end])
        if masked:
            payload = apply_mask(mask, payload)
        raw = bytes(buf[:end])
        del buf[:end]
        return Frame(fin, rsv1, opcode, payload, raw)


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, masked: bool
) -> bytes:
    """One frame; client frames get a fresh random mask (RFC 6455 5.3)."""
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    flag = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head.append(flag | n)
    elif n < 1 << 16:
        head.append(flag | 126)
        head += struct.pack("!H", n)
    else:
        head.append(flag | 127)
        head += struct.pack("!Q", n)
    if not masked:
        return bytes(head) + payload
    mask = os.urandom(4)
    return bytes(head) + mask + apply_mask(mask, payload)


class Inflater:
    """Decompresses one direction's messages; with context takeover the window carries
    over from message to message (one DEFLATE stream), without it each starts afresh."""

    def __init__(self, *, no_context_takeover: bool, max_size: int) -> None:
        self.no_context_takeover = no_context_takeover
        self.max_size = max_size
        self._d: zlib._Decompress | None = None

    def inflate(self, data: bytes) -> bytes:
        if self._d is None or self.no_context_takeover:
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            out = self._d.decompress(data + _TAIL, self.max_size + 1)
        except zlib.error as exc:
            raise ProtocolError(f"bad compressed message: {exc}") from None
        if len(out) > self.max_size or self._d.unconsumed_tail:
            raise ProtocolError(f"message inflates past {self.max_size} bytes")
        if self._d.eof:  # a final block ended the stream: the next message starts one
            self._d = None
        return out


class Deflater:
    """Compresses messages we send ourselves, within the window the peer accepted."""

    def __init__(self, *, window_bits: int, no_context_takeover: bool) -> None:
        if window_bits < 9:  # zlib cannot write raw DEFLATE with an 8-bit window
            raise Unsupported("client_max_window_bits=8")
        self.window_bits = window_bits
        self.no_context_takeover = no_context_takeover
        self._c: zlib._Compress | None = None

    def deflate(self, data: bytes) -> bytes:
        if self._c is None or self.no_context_takeover:
            self._c = zlib.compressobj(6, zlib.DEFLATED, -self.window_bits)
        out = self._c.compress(data) + self._c.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(_TAIL) else out


@dataclass(slots=True)
class Message:
    opcode: int  # OP_TEXT or OP_BINARY
    data: bytes  # decompressed
    frames: list[Frame] = field(default_factory=list)  # as received
    compressed: bool = False


class MessageReader:
    """Reassembles data messages from frames (control frames may come between the
    fragments of one) and inflates compressed ones."""

    def __init__(self, inflater: Inflater | None, max_size: int) -> None:
        self.inflater = inflater
        self.max_size = max_size
        self._open: Message | None = None
        self._size = 0

    def add(self, frame: Frame) -> Message | None:
        if frame.control:
            return None
        if frame.opcode == OP_CONTINUATION:
            if self._open is None:
                raise ProtocolError("continuation frame without a message")
            if frame.rsv1:
                raise ProtocolError("RSV1 on a continuation frame")
        else:
            if self._open is not None:
                raise ProtocolError("new message before the last one finished")
            if frame.rsv1 and self.inflater is None:
                raise ProtocolError("compressed message without permessage-deflate")
            self._open = Message(frame.opcode, b"", [], frame.rsv1)
            self._size = 0
        message = self._open
        self._size += len(frame.payload)
        if self._size > self.max_size:
            raise ProtocolError(f"message exceeds {self.max_size} bytes")
        message.frames.append(frame)
        if not frame.fin:
            return None
        self._open = None
        payload = b"".join(f.payload for f in message.frames)
        if message.compressed:
            assert self.inflater is not None
            payload = self.inflater.inflate(payload)
        message.data = payload
        return message

    @property
    def in_message(self) -> bool:
        return self._open is not None
