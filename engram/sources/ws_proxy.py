"""WebSocket upgrades through `engram proxy`: spliced to the upstream, both ways, until
either side closes.

The upgrade request goes upstream on a raw connection of its own with the agent's
headers as they are (key, version, offered extensions), and the upstream's answer comes
back as it is: a refusal (404, 426, 401) is relayed like any response; a 101 is relayed
and from then on bytes flow both ways untouched.

One protocol is read on the way: Codex's Responses API over WebSocket (`/v1/responses`,
one `response.create` message per turn, answered by the same events as the SSE stream).
Each turn is journaled like a `POST /v1/responses` (the request rebuilt in full when it
only carries the new input after `previous_response_id`), and memory is injected into
the `instructions` of each `response.create`. Any other WebSocket protocol is passed
through unread and counted as not captured (`engram run` says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from engram.sources import wsframes as ws
from engram.wire.detect import endpoint_of, format_from_path
from engram.wire.markers import error_body
from engram.wire.model import Format, RawRequest, RawResponse

if TYPE_CHECKING:
    from engram.sources.proxy import Proxy

log = logging.getLogger("engram.proxy")

_HEAD_LIMIT = 64 * 1024  # an upgrade response's head
_REFUSAL_LIMIT = 1 << 20  # the body of a refused upgrade we relay
_CONNECT_TIMEOUT = 30.0
_PAUSE_AT = 1 << 20  # bytes from the agent queued before we stop reading from it
_TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})
_NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding", "proxy-connection"})
_NOT_RETURNED = frozenset(
    {"connection", "upgrade", "transfer-encoding", "content-length", "keep-alive"}
)


class _Upgraded(web.StreamResponse):
    """The 101 the agent gets: headers only, then the connection is ours (no chunking,
    no length, never kept alive as HTTP)."""

    _length_check = False

    def __init__(self, reason: str) -> None:
        super().__init__(status=101, reason=reason or "Switching Protocols")
        self.force_close()

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class _Feed:
    """Sits in aiohttp's parser slot after the upgrade: the agent's bytes, queued for
    the pump; reading pauses while too much waits (the upstream is slower)."""

    def __init__(self, transport: asyncio.Transport | None) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transport = transport
        self.queued = 0
        self.paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(bytes(data))
            self.queued += len(data)
            if self.queued > _PAUSE_AT and self.transport is not None and not self.paused:
                self.paused = True
                self.transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)

    async def get(self) -> bytes | None:
        data = await self.queue.get()
        if data:
            self.queued -= len(data)
            if self.paused and self.queued < _PAUSE_AT // 2 and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
        return data


async def splice(proxy: Proxy, request: web.Request) -> web.StreamResponse:
    stats = proxy.stats
    stats.websockets += 1
    target = urlsplit(proxy.upstream)
    tls = target.scheme == "https"
    host = target.hostname or ""
    port = target.port or (443 if tls else 80)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=ssl.create_default_context() if tls else None,
                server_hostname=host if tls else None,
            ),
            _CONNECT_TIMEOUT,
        )
    except (OSError, TimeoutError) as exc:
        stats.upstream_errors += 1
        return _bad_gateway(request, f"upstream {proxy.upstream} unreachable: {exc}")
    try:
        writer.write(_request_head(request, target.netloc))
        status, reason, headers = await asyncio.wait_for(_read_head(reader), _CONNECT_TIMEOUT)
        if status != 101:
            body = await asyncio.wait_for(_read_refusal(reader, headers), _CONNECT_TIMEOUT)
            writer.close()
            refused = web.Response(status=status, reason=reason, body=body)
            for key, value in headers:
                if key.lower() not in _NOT_RETURNED:
                    refused.headers.add(key, value)
            return refused
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
        stats.upstream_errors += 1
        writer.close()
        return _bad_gateway(request, f"upstream {proxy.upstream} failed the upgrade: {exc!r}")
    except BaseException:
        writer.close()
        raise
    return await _spliced(proxy, request, reader, writer, reason, headers)


async def _spliced(
    proxy: Proxy,
    request: web.Request,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    reason: str,
    headers: list[tuple[str, str]],
) -> web.StreamResponse:
    response = _Upgraded(reason)
    for key, value in headers:
        if key.lower() not in _NOT_RETURNED:
            response.headers.add(key, value)
    response.headers["Upgrade"] = "websocket"
    response.headers["Connection"] = "Upgrade"
    session = _session_for(proxy, request, headers)
    try:
        await response.prepare(request)
        feed = _Feed(request.transport)
        request.protocol.set_parser(feed)  # type: ignore[arg-type]
        upward = asyncio.ensure_future(_pump_up(feed, writer, session))
        downward = asyncio.ensure_future(_pump_down(reader, response, session))
        try:
            await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upward, downward):
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(upward, downward, return_exceptions=True)
    finally:
        writer.close()
        session.close()
        if request.transport is not None:
            request.transport.close()
    return response


async def _pump_up(feed: _Feed, writer: asyncio.StreamWriter, session: Session) -> None:
    while True:
        data = await feed.get()
        if data is None:
            return
        out = await session.from_client(data)
        if out is None:  # the session cannot go on (a rewritten stream went bad)
            return
        if out:
            writer.write(out)
            await writer.drain()


async def _pump_down(
    reader: asyncio.StreamReader, response: web.StreamResponse, session: Session
) -> None:
    while True:
        data = await reader.read(65536)
        if not data:
            return
        await session.from_server(data)
        await response.write(data)


def _bad_gateway(request: web.Request, message: str) -> web.Response:
    fmt = format_from_path(endpoint_of(request.path))
    return web.json_response(error_body(fmt, 502, f"engram proxy: {message}"), status=502)


def _request_head(request: web.Request, netloc: str) -> bytes:
    lines = [f"{request.method} {request.raw_path} HTTP/1.1", f"Host: {netloc}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, list[tuple[str, str]]]:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = await reader.readuntil(b"\n")
        head += line
        if len(head) > _HEAD_LIMIT:
            raise ValueError("response head too large")
        if line in (b"\r\n", b"\n") and len(head) == len(line):
            head = b""  # stray empty line before the status line
    status_line, *rest = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    headers: list[tuple[str, str]] = []
    for field in rest:
        if not field:
            continue
        key, sep, value = field.partition(":")
        if sep:
            headers.append((key.strip(), value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


async def _read_refusal(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    length = next((v for k, v in headers if k.lower() == "content-length"), None)
    if length is not None and length.isdigit():
        return await reader.readexactly(min(int(length), _REFUSAL_LIMIT))
    return await reader.read(_REFUSAL_LIMIT)  # close-delimited (or chunked: read as is)


def _session_for(proxy: Proxy, request: web.Request, headers: list[tuple[str, str]]) -> Session:
    extensions = next((v for k, v in headers if k.lower() == "sec-websocket-extensions"), None)
    if format_from_path(endpoint_of(request.path)) is Format.OPENAI_RESPONSES:
        try:
            return ResponsesSession(proxy, request, ws.negotiated(extensions))
        except ws.Unsupported as exc:
            log.info("WebSocket on %s passed through unread: %s", request.path, exc)
    proxy.stats.websockets_uncaptured += 1
    return Session()


class Session:
    """What passes is passed as is: the protocols engram does not read."""

    async def from_client(self, data: bytes) -> bytes | None:
        return data

    async def from_server(self, data: bytes) -> None:
        return None

    def close(self) -> None:
        return None


class _Turn:
    def __init__(self, body: dict[str, Any], started: float) -> None:
        self.body = body
        self.started = started
        self.events: list[bytes] = []
        self.journal = True


class ResponsesSession(Session):
    """Codex's Responses-over-WebSocket: turns captured, memory injected."""

    def __init__(self, proxy: Proxy, request: web.Request, deflate: ws.Deflate | None) -> None:
        self.proxy = proxy
        self.path = request.raw_path
        self.headers = [
            (k, v)
            for k, v in request.headers.items()
            if not k.lower().startswith("sec-websocket") and k.lower() not in _NOT_RETURNED
        ]
        self.deflate = deflate
        limit = proxy.settings.max_body_bytes or 256 * 2**20
        self.limit = limit
        on = deflate is not None
        self.up = ws.FrameParser(masked=True, rsv1=on, max_payload=limit)
        self.down = ws.FrameParser(masked=False, rsv1=on, max_payload=limit)
        self.up_messages = ws.MessageReader(
            ws.Inflater(no_context_takeover=deflate.client_no_context_takeover, max_size=limit)
            if deflate
            else None,
            limit,
        )
        self.down_messages = ws.MessageReader(
            ws.Inflater(no_context_takeover=deflate.server_no_context_takeover, max_size=limit)
            if deflate
            else None,
            limit,
        )
        self.deflater: ws.Deflater | None = None  # set once we re-encode the client's side
        self.up_broken = self.down_broken = False
        self.turns: list[_Turn] = []
        self.context: tuple[str, list[Any]] | None = None  # (response id, its full input)
        self._held: list[bytes] = []  # raw frames of a client message not yet complete

    # -- agent -> upstream -----------------------------------------------------------

    async def from_client(self, data: bytes) -> bytes | None:
        if self.up_broken:
            return data
        try:
            frames = self.up.feed(data)
        except ws.ProtocolError as exc:
            return self._give_up_up(exc, data)
        out: list[bytes] = []
        for frame in frames:
            if frame.control:
                out.append(frame.raw)
                continue
            self._held.append(frame.raw)
            try:
                message = self.up_messages.add(frame)
            except ws.ProtocolError as exc:
                return self._give_up_up(exc, b"".join(out))
            if message is None:
                continue
            held, self._held = self._held, []
            sent = await self._outgoing(message, held)
            if sent is None:
                return None
            out.append(sent)
        return b"".join(out)

    def _give_up_up(self, exc: Exception, pending: bytes) -> bytes | None:
        """Stop reading the agent's side; pass the rest through, if we still can."""
        log.warning("stopped reading a Responses WebSocket (agent side): %s", exc)
        self.up_broken = True
        self.proxy.stats.websockets_uncaptured += 1
        if self.deflater is not None:
            return None  # the upstream's decompressor follows our stream, not the agent's
        rest = b"".join(self._held) + pending
        self._held = []
        return rest

    async def _outgoing(self, message: ws.Message, held: list[bytes]) -> bytes | None:
        data = message.data
        if message.opcode == ws.OP_TEXT:
            data = await self._request(message.data)
        if data is message.data and not (message.compressed and self.deflater is not None):
            return b"".join(held)  # untouched, and the compression streams agree: as received
        if not message.compressed:
            return ws.encode_frame(message.opcode, data, masked=True)
        if self.deflater is None:
            assert self.deflate is not None
            try:
                self.deflater = ws.Deflater(
                    window_bits=self.deflate.client_max_window_bits,
                    no_context_takeover=self.deflate.client_no_context_takeover,
                )
            except ws.Unsupported:
                return b"".join(held)  # we cannot compress for this peer: no injection
            if self.deflate.client_no_context_takeover:
                frame = ws.encode_frame(
                    message.opcode, self.deflater.deflate(data), rsv1=True, masked=True
                )
                self.deflater = None  # each message stands alone: nothing to keep in step
                return frame
        return ws.encode_frame(message.opcode, self.deflater.deflate(data), rsv1=True, masked=True)

    async def _request(self, text: bytes) -> bytes:
        """A `response.create`: remembered as a turn, and given memory."""
        try:
            body = json.loads(text)
        except ValueError:
            return text
        if not isinstance(body, dict) or body.get("type") != "response.create":
            return text
        full = self._full_request(body)
        turn = _Turn(full, time.time())
        # `generate: false` warms the upstream's cache (Codex sends one per connection):
        # no answer is generated, there is nothing to journal.
        turn.journal = body.get("generate") is not False
        self.turns.append(turn)
        proxy = self.proxy
        proxy.stats.requests += 1
        if proxy.recall is None:
            return text
        raw = self._raw_request(turn)
        return await proxy._with_memory(text, Format.OPENAI_RESPONSES, raw)

    def _full_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request as `POST /v1/responses` would carry it: the whole input, even when
        the message only adds to the previous response's (`previous_response_id`)."""
        full = {k: v for k, v in body.items() if k != "type"}
        previous = full.pop("previous_response_id", None)
        items = full.get("input")
        context = self.context
        if previous and context is not None and context[0] == previous and isinstance(items, list):
            full["input"] = [*context[1], *items]
        full["stream"] = True
        return full

    def _raw_request(self, turn: _Turn) -> RawRequest:
        return RawRequest(
            headers=[*self.headers, ("Content-Type", "application/json")],
            body=json.dumps(turn.body).encode(),
            timestamp_start=turn.started,
            method="POST",
            scheme="https",
            host=self.proxy._upstream_host(),
            path=self.path,
        )

    # -- upstream -> agent -----------------------------------------------------------

    async def from_server(self, data: bytes) -> None:
        if self.down_broken:
            return
        try:
            for frame in self.down.feed(data):
                message = self.down_messages.add(frame)
                if message is not None and message.opcode == ws.OP_TEXT:
                    await self._event(message.data)
        except ws.ProtocolError as exc:
            log.warning("stopped reading a Responses WebSocket (upstream side): %s", exc)
            self.down_broken = True
            self.proxy.stats.websockets_uncaptured += 1
            self._flush_turns("the upstream's WebSocket stream could not be read")

    async def _event(self, text: bytes) -> None:
        if not self.turns:
            return
        turn = self.turns[0]
        try:
            event = json.loads(text)
        except ValueError:
            return
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str):
            return
        turn.events.append(b"event: " + kind.encode() + b"\ndata: " + text + b"\n\n")
        if kind not in _TERMINAL:
            return
        self.turns.pop(0)
        response = event.get("response") if isinstance(event.get("response"), dict) else None
        if kind == "response.completed" and response is not None:
            output = response.get("output")
            if isinstance(response.get("id"), str) and isinstance(output, list):
                items = turn.body.get("input")
                before = items if isinstance(items, list) else []
                self.context = (response["id"], [*before, *output])
        await self._journal(turn, None, durable=True)

    async def _journal(self, turn: _Turn, error: str | None, *, durable: bool = False) -> None:
        proxy = self.proxy
        if proxy.capture is None or not turn.journal:
            return
        item = self._captured(turn, error)
        if durable:  # the agent gets the turn's last event after it is journaled
            await proxy.writer.put_durable(item, proxy.settings.durable_wait_s)
        else:
            proxy.writer.put_nowait(item)

    def _captured(self, turn: _Turn, error: str | None) -> Any:
        raw = self._raw_request(turn)
        raw.timestamp_end = time.time()
        response = RawResponse(
            headers=[("Content-Type", "text/event-stream")],
            body=b"".join(turn.events),
            timestamp_start=turn.started,
            timestamp_end=raw.timestamp_end,
            status_code=200,
        )
        return (raw, response, error)

    def _flush_turns(self, error: str) -> None:
        turns, self.turns = self.turns, []
        for turn in turns:
            if self.proxy.capture is not None and turn.journal:
                self.proxy.writer.put_nowait(self._captured(turn, error))

    def close(self) -> None:
        self._flush_turns("the WebSocket closed before the turn completed")
