"""HTTP body encodings for the proxy: a bounded decoded copy, and re-encoding after an edit.

The proxy forwards bodies byte-exact with their headers; it decodes a *copy* only to
read it (recall, capture), never more than a limit (a 20 KB gzip bomb must not become
gigabytes in memory), and when it injects memory into a compressed request it encodes
the edited body again with the same encoding, so the body always matches its
`Content-Encoding`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

# The encodings we can both read and write; any other is forwarded untouched, unread.
KNOWN = ("identity", "gzip", "x-gzip", "deflate", "br", "zstd")


@dataclass(frozen=True)
class Decoded:
    data: bytes
    error: str | None = None  # why `data` is not the whole decoded body (None: it is)


def _encodings(header: str | None) -> list[str]:
    """`Content-Encoding: gzip, br` lists codings in the order they were applied."""
    return [e.strip().lower() for e in (header or "").split(",") if e.strip()]


def decode(body: bytes, header: str | None, limit: int) -> Decoded:
    """The decoded body, at most `limit` bytes (0: no limit); undecodable bodies come back
    as they are, with the reason."""
    data = body
    for encoding in reversed(_encodings(header)):
        if encoding == "identity":
            continue
        try:
            data, cut = _decode_one(data, encoding, limit)
        except Exception as exc:
            return Decoded(body, f"cannot decode {encoding} body: {type(exc).__name__}")
        if cut:
            return Decoded(data, f"decoded body exceeds {limit} bytes (kept the first {limit})")
    return Decoded(data)


def _decode_one(data: bytes, encoding: str, limit: int) -> tuple[bytes, bool]:
    cap = limit if limit > 0 else -1
    if encoding in ("gzip", "x-gzip", "deflate"):
        if encoding == "deflate" and data[:1] and (data[0] & 0x0F) != 8:
            wbits = -zlib.MAX_WBITS  # raw deflate, as some clients send it
        else:
            wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
        d = zlib.decompressobj(wbits)
        out = d.decompress(data, cap if cap > 0 else 0)
        cut = bool(d.unconsumed_tail) or (cap > 0 and len(out) >= cap and not d.eof)
        return out, cut
    if encoding == "br":
        import brotli

        if cap <= 0:
            return bytes(brotli.decompress(data)), False
        decoder = brotli.Decompressor()
        out = decoder.process(data, output_buffer_limit=cap + 1)
        while len(out) <= cap and not decoder.is_finished():
            more = decoder.process(b"", output_buffer_limit=cap + 1 - len(out))
            if not more:
                break
            out += more
        return (out[:cap], True) if len(out) > cap else (out, False)
    if encoding == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(data)
        out = reader.read(cap + 1 if cap > 0 else -1)
        if cap > 0 and len(out) > cap:
            return out[:cap], True
        return out, False
    raise ValueError(f"unknown encoding {encoding}")


def encode(data: bytes, header: str | None) -> bytes | None:
    """`data` encoded as `Content-Encoding: header` says, or None when we cannot."""
    for encoding in _encodings(header):
        if encoding == "identity":
            continue
        if encoding in ("gzip", "x-gzip"):
            c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            data = c.compress(data) + c.flush()
        elif encoding == "deflate":
            data = zlib.compress(data, 6)
        elif encoding == "br":
            import brotli

            data = bytes(brotli.compress(data, quality=5))
        elif encoding == "zstd":
            import zstandard

            data = zstandard.ZstdCompressor(level=3).compress(data)
        else:
            return None
    return data


def readable(header: str | None) -> bool:
    return all(e in KNOWN for e in _encodings(header))
