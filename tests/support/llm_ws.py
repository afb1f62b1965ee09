"""The stand-in's Responses API over WebSocket, as Codex speaks it (0.171, observed).

Codex opens `ws(s)://…/v1/responses` (offering permessage-deflate) and sends one text
message per turn: `{"type": "response.create", …the POST /v1/responses body…}`, with
`previous_response_id` and only the new input items on a reused connection. The server
answers each with the same typed events the SSE stream carries, one text message per
event, ending in `response.completed`. aiohttp's server side negotiates permessage-deflate
with context takeover, so a proxy in between must follow both DEFLATE streams.

A path ending in `/realtime` is an echo server instead: a WebSocket protocol engram does
not read, for tests of plain pass-through.

Every upgrade attempt is recorded (`api="openai_responses_ws_upgrade"`), every
`response.create` too (`api="openai_responses_ws"`, `json` = the message), so tests can
see what reached the upstream through a proxy.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from tests.support.llm_formats import (
    CutStream,
    Delay,
    Fail,
    Reply,
    default_reply,
)

if TYPE_CHECKING:
    from tests.support.llm_stub import LLMStub


def _event_payloads(events: list[bytes]) -> list[str]:
    """The JSON of each SSE event (`data:` lines), one WebSocket message each."""
    out = []
    for event in events:
        for line in event.decode().splitlines():
            if line.startswith("data:"):
                out.append(line[5:].strip())
    return out


async def serve_responses_ws(stub: LLMStub, request: web.Request) -> web.StreamResponse:
    from tests.support.llm_formats import responses_events

    stub.record(request, "openai_responses_ws_upgrade", b"", None)
    if stub.websocket and request.path.endswith("/realtime"):
        return await _echo(stub, request)
    if not stub.websocket or not request.path.endswith("/responses"):
        return web.json_response(
            {"error": {"message": f"stub: no WebSocket on {request.path}"}}, status=404
        )
    socket = web.WebSocketResponse(compress=stub.ws_compress, max_msg_size=256 * 2**20)
    await socket.prepare(request)
    async for msg in socket:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            body = json.loads(msg.data)
        except ValueError:
            continue
        if not isinstance(body, dict) or body.get("type") != "response.create":
            continue
        rec = stub.record(request, "openai_responses_ws", msg.data.encode(), body)
        step = stub._next_step(rec)
        while isinstance(step, Delay):
            await asyncio.sleep(step.seconds)
            step = step.then if step.then is not None else default_reply(body)
        if isinstance(step, Fail):
            await socket.send_str(
                json.dumps(
                    {
                        "type": "error",
                        "status": step.status,
                        "error": {"type": "server_error", "message": step.message},
                    }
                )
            )
            continue
        reply = step if isinstance(step, Reply) else getattr(step, "reply", None)
        turn = stub._turn(rec, reply or default_reply(body))
        payloads = _event_payloads(responses_events(turn, body))
        cut = step.after_events if isinstance(step, CutStream) else None
        for index, payload in enumerate(payloads):
            if cut is not None and index >= cut:
                await socket.close()
                return socket
            await socket.send_str(payload)
    return socket


async def _echo(stub: LLMStub, request: web.Request) -> web.StreamResponse:
    """`…/realtime`: a WebSocket protocol engram does not read; every message echoed."""
    socket = web.WebSocketResponse(compress=stub.ws_compress)
    await socket.prepare(request)
    async for msg in socket:
        if msg.type == WSMsgType.TEXT:
            await socket.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await socket.send_bytes(msg.data)
    return socket
