"""WebSocket upgrades through `engram proxy` (issues 14 and 18).

Before: the upgrade was forwarded as a plain GET (hop-by-hop headers dropped), so every
WebSocket failed and Codex started each run with seven refused upgrades. Now the
connection is spliced through; Codex's Responses-over-WebSocket is read on the way (turns
journaled, memory in `instructions`), with permessage-deflate and context takeover in
both directions; any other protocol passes unread and is counted as not captured.
The client is aiohttp's WebSocket client (it negotiates permessage-deflate like Codex).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engram.wire.block import BLOCK_OPEN
from tests.support.llm_stub import LLMStub
from tests.support.proxied import journal_rows
from tests.support.wait import wait_until

KEY = "sk-proj-" + "Wd7k" * 12
PROJECT = "/home/dev/shop"
MEMORY = "- The staging database listens on port 5433 (m-abcd1234)"


def create(text: str, previous: str | None = None, history: bool = True) -> dict[str, Any]:
    """A `response.create` as Codex 0.171 sends it (no `instructions`: developer items)."""
    items: list[dict[str, Any]] = []
    if history:
        items += [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are Codex."}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": f"<environment_context>\n  <cwd>{PROJECT}</cwd>\n"
                        "</environment_context>",
                    }
                ],
            },
        ]
    items.append(
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    body: dict[str, Any] = {
        "type": "response.create",
        "model": "gpt-6.2-sol",
        "stream": True,
        "input": items,
        "store": False,
        "client_metadata": {"session_id": "0199-session"},
    }
    if previous:
        body["previous_response_id"] = previous
    return body


async def turns(url: str, compress: int) -> tuple[list[list[dict[str, Any]]], str]:
    """Two turns on one connection, the second incremental (previous_response_id)."""
    out: list[list[dict[str, Any]]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            url + "/v1/responses",
            headers={
                "Authorization": f"Bearer {KEY}",
                "OpenAI-Beta": "responses_websockets=2026-02-06",
            },
            compress=compress,
        ) as ws,
    ):
        extensions = ws._response.headers.get("Sec-WebSocket-Extensions", "")
        previous = None
        for n, text in enumerate(["Which port does staging use?", "And the replica?"]):
            await ws.send_str(json.dumps(create(text, previous, history=n == 0)))
            events = []
            while True:
                msg = await asyncio.wait_for(ws.receive(), 20)
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                events.append(json.loads(msg.data))
                if events[-1]["type"] == "response.completed":
                    break
            previous = events[-1]["response"]["id"]
            out.append(events)
    return out, extensions


@pytest.mark.parametrize("compress", [15, 0], ids=["permessage-deflate", "uncompressed"])
def test_codex_responses_over_websocket_are_injected_and_journaled(
    proxied: Any, db_path: Path, compress: int
) -> None:
    with LLMStub() as stub:
        proxy, url = proxied(stub.url, recall=lambda *_: MEMORY)
        events, extensions = asyncio.run(turns(url, compress))
    assert ("permessage-deflate" in extensions) == bool(compress)
    assert [e[-1]["response"]["output"][0]["content"][0]["text"] for e in events] == [
        "ok: Which port does staging use?",
        "ok: And the replica?",
    ]
    sent = [r.json for r in stub.requests if r.api == "openai_responses_ws"]
    assert len(sent) == 2  # both reached the upstream, decodable after our re-encoding
    for message in sent:
        assert BLOCK_OPEN in message["instructions"] and "5433" in message["instructions"]
    assert sent[1]["previous_response_id"] and len(sent[1]["input"]) == 1  # as the agent sent it
    assert proxy.stats.websockets == 1 and proxy.stats.websockets_uncaptured == 0
    rows = wait_until(lambda: len(journal_rows(db_path)) == 2 and journal_rows(db_path))
    assert {r["format"] for r in rows} == {"openai-responses"}
    assert {r["project"] for r in rows} == {PROJECT}
    assert len({r["conversation"] for r in rows}) == 1  # the rebuilt input continues it
    texts = [[t["text"] for t in json.loads(r["turns"])] for r in rows]
    assert texts[0][-2:] == ["Which port does staging use?", "ok: Which port does staging use?"]
    assert texts[1] == ["And the replica?", "ok: And the replica?"]  # only what is new
    assert "5433" not in json.dumps(rows)  # the block never reaches the journal


def test_other_websocket_protocols_pass_through_unread(proxied: Any, db_path: Path) -> None:
    async def echo(url: str) -> list[Any]:
        got: list[Any] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url + "/v1/realtime", compress=15) as ws,
        ):
            await ws.send_str("hello " * 1000)
            got.append((await ws.receive()).data)
            await ws.send_bytes(bytes(range(256)) * 300)
            got.append((await ws.receive()).data)
            await ws.ping(b"still there?")
        return got

    with LLMStub() as stub:
        proxy, url = proxied(stub.url, recall=lambda *_: MEMORY)
        got = asyncio.run(echo(url))
    assert got == ["hello " * 1000, bytes(range(256)) * 300]
    assert proxy.stats.websockets == 1 and proxy.stats.websockets_uncaptured == 1
    assert journal_rows(db_path) == []


def test_a_refused_upgrade_is_relayed_as_the_upstream_answered(proxied: Any) -> None:
    async def connect(url: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url + "/v1/responses"):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    with LLMStub(websocket=False) as stub:
        _proxy, url = proxied(stub.url)
        assert asyncio.run(connect(url)) == 404
    upgrade = stub.requests[-1]
    assert upgrade.api == "openai_responses_ws_upgrade"  # it reached upstream as an upgrade
    assert upgrade.header("Sec-WebSocket-Key")


def test_an_agent_that_hangs_up_mid_turn_keeps_the_turn_as_interrupted(
    proxied: Any, db_path: Path
) -> None:
    from tests.support.llm_formats import Delay

    async def hang_up(url: str) -> None:
        async with (
            aiohttp.ClientSession() as session,
            # The upstream is busy (Delay) and answers no close frame: the agent stops
            # waiting for one after half a second (aiohttp's default is 10 s).
            session.ws_connect(
                url + "/v1/responses", compress=15, timeout=aiohttp.ClientWSTimeout(ws_close=0.5)
            ) as ws,
        ):
            await ws.send_str(json.dumps(create("Which port does staging use?")))

    with LLMStub(Delay(30)) as stub:
        _proxy, url = proxied(stub.url)
        asyncio.run(hang_up(url))
        rows = wait_until(lambda: journal_rows(db_path), what="the interrupted turn journaled")
    assert "closed before the turn completed" in rows[0]["error"]
