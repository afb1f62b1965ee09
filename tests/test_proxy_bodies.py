"""Request bodies pass through byte-exact (issue 14.3), oversized ones get a provider-shaped,
journaled 413, and the injected block cannot be closed early by a look-alike tag.

The upstream is a raw socket server (it records the exact bytes it received); the client
is `http.client`, which sends only the headers it is given, so "the proxy added nothing"
is observable.
"""

from __future__ import annotations

import gzip
import http.client
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import brotli
import httpx2
import pytest
import zstandard

from engram.wire.block import BLOCK_CLOSE, remove_block, wrap_block
from tests.support.proxied import journal_rows
from tests.support.raw_upstream import RawUpstream, Send, http_head

FAKE_KEY = "sk-ant-api03-Lp2wE8rT2yU6iO0pA3sD7fG1hJ4kL8zX2cV5bN9mQ3wE6rT0yU4iO7pA1sD5fG8hJ2kL6zX"
ANSWER = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Port 5433."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 3},
    }
).encode()
REPLY = (
    http_head(200, [("Content-Type", "application/json"), ("Content-Length", str(len(ANSWER)))])
    + ANSWER
)
REQUEST = json.dumps(
    {
        "model": "claude-haiku-4-5",
        "max_tokens": 20,
        "system": "Primary working directory: /home/dev/shop\n",
        "messages": [{"role": "user", "content": "Which port does the staging database use?"}],
    }
).encode()

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}
DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
}


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST with exactly these headers (plus Host and Content-Length)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.putrequest("POST", "/v1/messages?beta=true", skip_accept_encoding=True)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            conn.putheader(key, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def split_request(raw: bytes) -> tuple[dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_compressed_request_bodies_are_forwarded_byte_exact(
    proxied: Any, db_path: Path, encoding: str
) -> None:
    # Before the fix: gzip was forwarded decoded under its original header (upstream 500),
    # zstd got a plain-text 400 "install backports.zstd".
    body = ENCODERS[encoding](REQUEST)
    with RawUpstream([Send(REPLY)]) as up:
        _proxy, url = proxied(up.url)
        status, answer = post(
            url,
            body,
            {
                "Content-Type": "application/json",
                "Content-Encoding": encoding,
                "x-api-key": FAKE_KEY,
            },
        )
    assert status == 200 and answer == ANSWER
    headers, forwarded = split_request(up.connections[0].request)
    assert forwarded == body  # byte-exact
    assert headers["content-encoding"] == encoding
    assert headers["content-length"] == str(len(body))
    # Nothing the client did not send: no Accept-Encoding, Accept or User-Agent of aiohttp's.
    assert not {"accept-encoding", "accept", "user-agent"} & set(headers)
    rows = journal_rows(db_path)  # capture read a decoded copy
    assert len(rows) == 1 and "staging database" in rows[0]["turns"]


def test_memory_injected_into_a_gzip_body_is_gzip_again(proxied: Any, db_path: Path) -> None:
    body = gzip.compress(REQUEST)
    with RawUpstream([Send(REPLY)]) as up:
        proxy, url = proxied(up.url)
        proxy.recall = lambda *_: "- The staging replica listens on port 7777 (m-abcd1234)"
        status, _ = post(
            url,
            body,
            {"Content-Type": "application/json", "Content-Encoding": "gzip", "x-api-key": FAKE_KEY},
        )
    assert status == 200 and proxy.stats.injected == 1
    headers, forwarded = split_request(up.connections[0].request)
    assert headers["content-encoding"] == "gzip"
    sent = json.loads(gzip.decompress(forwarded))
    assert "7777" in json.dumps(sent["system"])
    assert "7777" not in json.dumps(journal_rows(db_path))  # the block never reaches the journal


def test_a_gzip_bomb_is_read_bounded_and_forwarded_as_is(proxied: Any, db_path: Path) -> None:
    bomb = gzip.compress(b"{" + b" " * (8 * 2**20))  # 8 MB of spaces in ~8 KB
    with RawUpstream([Send(REPLY)]) as up:
        _proxy, url = proxied(up.url, max_body_bytes=2**20)
        status, _ = post(url, bomb, {"Content-Encoding": "gzip", "x-api-key": FAKE_KEY})
    assert status == 200
    assert split_request(up.connections[0].request)[1] == bomb
    rows = journal_rows(db_path)
    assert len(rows) == 1 and "exceeds" in rows[0]["error"]


def test_an_oversized_body_is_a_provider_shaped_journaled_413(proxied: Any, db_path: Path) -> None:
    with RawUpstream([Send(REPLY)]) as up:
        _proxy, url = proxied(up.url, max_body_bytes=4096)
        client = anthropic.Anthropic(
            base_url=url,
            api_key=FAKE_KEY,
            max_retries=0,
            http_client=httpx2.Client(trust_env=False, timeout=30),
        )
        with pytest.raises(anthropic.APIStatusError) as err:
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=10,
                messages=[{"role": "user", "content": "x" * 10_000}],
            )
    assert err.value.status_code == 413
    body = err.value.response.json()
    assert body["type"] == "error" and "max_body_mb" in body["error"]["message"]
    assert up.connections == []  # nothing went upstream
    rows = journal_rows(db_path)
    assert len(rows) == 1
    assert rows[0]["status"] == "failed" and "max_body_mb" in rows[0]["error"]


@pytest.mark.parametrize(
    "closer",
    [
        "</ENGRAM-MEMORY>",
        "</Engram-Memory >",
        "< /engram-memory>",
        "</engram-memory\n>",
        "<\t/ engram-MEMORY>",
    ],
)
def test_look_alike_closers_in_memory_text_are_defused(closer: str) -> None:
    block = wrap_block(f"- a memory that quotes {closer} and then more text")
    assert block.count(BLOCK_CLOSE) == 1 and block.endswith(BLOCK_CLOSE)
    assert closer not in block
    around = f"before\n\n{block}\n\nafter"
    assert remove_block(around) == "before\n\nafter"
