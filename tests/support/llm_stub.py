"""A loopback stand-in for the Anthropic, OpenAI and Gemini APIs, for tests and `make demo`.

Tests must exercise real parts: real sockets, real HTTP, and the real `anthropic` and
`openai` SDKs as clients. This server speaks the providers' wire formats closely enough
for those SDKs (and for engram's own parsers) to accept it, on 127.0.0.1 with a free
port, from a background thread so synchronous tests can use it without an event loop.

Routes are matched on the path's *suffix*, so any base URL prefix works (`/v1/...`,
`/compatible-mode/v1/...`, Claude Code's `?beta=true`):

- `.../messages` -> `anthropic`; `.../messages/count_tokens` -> `anthropic_count`
- `.../chat/completions` -> `openai_chat`; `.../responses` -> `openai_responses`
- `.../models/{m}:generateContent`, `:streamGenerateContent` -> `gemini`
  (`:countTokens` -> `gemini_count`)
- `/v1internal:generateContent`, `:streamGenerateContent` -> `code_assist`
  (`:countTokens` -> `code_assist_count`)
- `GET /health` -> `health`; anything else is recorded as `unknown` and gets a 404.
- a WebSocket upgrade on `.../responses` -> Responses over WebSocket, as Codex speaks it
  (`tests/support/llm_ws.py`; `websocket=False` refuses it with a 404).

The name after each arrow is what `RecordedRequest.api` holds.

Streams are written one event per `write` with a yield (or `event_delay`) in between,
so a client or proxy that buffers can be told apart from one that streams. What each
reply contains is decided by a `Script` (see `llm_formats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.llm_formats import (
    CutStream,
    Delay,
    Empty,
    Fail,
    RecordedRequest,
    Reply,
    Script,
    Step,
    ToolUse,
    Turn,
    anthropic_events,
    anthropic_json,
    chat_events,
    chat_json,
    default_reply,
    error_json,
    estimate_output,
    gemini_chunks,
    gemini_json,
    responses_events,
    responses_json,
    sse,
)

__all__ = [
    "CutStream",
    "Delay",
    "Empty",
    "Fail",
    "LLMStub",
    "RecordedRequest",
    "Reply",
    "Script",
    "Step",
    "ToolUse",
    "running_stub",
]

_STEPS = (Reply, Fail, Delay, CutStream, Empty)
_GEMINI_PATH = re.compile(
    r"(/v1internal|/models/[^/:]+):(generateContent|streamGenerateContent|"
    r"countTokens)$"
)
_JSON = "application/json"
_SSE = "text/event-stream"


@dataclass(frozen=True)
class _Route:
    api: str
    stream: bool = False
    sse: bool = True  # Gemini streams without ?alt=sse are one JSON array instead


def _route(method: str, path: str, query: dict[str, str], body: Any) -> _Route | None:
    if method == "GET" and path == "/health":
        return _Route("health")
    if method == "GET" and path.endswith("/models"):
        return _Route("models")
    if method != "POST":
        return None
    wants_stream = isinstance(body, dict) and body.get("stream") is True
    if path.endswith("/messages/count_tokens"):
        return _Route("anthropic_count")
    for suffix, api in (
        ("/messages", "anthropic"),
        ("/chat/completions", "openai_chat"),
        ("/responses", "openai_responses"),
    ):
        if path.endswith(suffix):
            return _Route(api, stream=wants_stream)
    found = _GEMINI_PATH.search(path)
    if not found:
        return None
    api = "code_assist" if found.group(1) == "/v1internal" else "gemini"
    if found.group(2) == "countTokens":
        return _Route(f"{api}_count")
    streaming = found.group(2) == "streamGenerateContent"
    return _Route(api, stream=streaming, sse=query.get("alt") == "sse")


def _key_of(request: web.Request) -> str | None:
    """The API key a client sent, in any of the providers' headers."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")


class LLMStub:
    """The server. `requests` lists every request received, in order (404s included);
    assign `script` at any time to change what later requests get."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        event_delay: float = 0.0,
        api_keys: set[str] | None = None,
        websocket: bool = True,
        ws_compress: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.event_delay = event_delay
        self.api_keys = api_keys  # None: any key; a set: others get a 401
        # Responses over WebSocket on `…/responses` (tests/support/llm_ws.py); False: the
        # upgrade gets a 404, as from an API without it. `ws_compress`: permessage-deflate.
        self.websocket = websocket
        self.ws_compress = ws_compress
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []  # exceptions raised by a callable script
        self._script = script
        self._cursor = 0
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # --- lifecycle (called from the test's thread) --------------------------------------

    @property
    def url(self) -> str:
        """Base URL without a trailing slash; SDKs append `/v1/...` themselves."""
        return f"http://{self.host}:{self.port}"

    @property
    def script(self) -> Script | None:
        return self._script

    @script.setter
    def script(self, script: Script | None) -> None:
        with self._lock:  # a new list starts from its first step again
            self._script, self._cursor = script, 0

    def start(self) -> LLMStub:
        """Serve from a daemon thread with its own event loop; returns once listening.
        After `stop()` it may start again, on the same port: an upstream that restarts."""
        if self._thread is not None:
            raise RuntimeError("LLMStub already started")
        self._ready.clear()
        self._start_error = self._stopping = None
        self._thread = threading.Thread(target=self._run, name=f"llm-stub:{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise TimeoutError("LLMStub did not start listening within 10 s")
        if self._start_error is not None:
            self._thread.join(timeout=5)
            raise RuntimeError(f"LLMStub failed to start: {self._start_error}") from (
                self._start_error
            )
        return self

    def stop(self) -> None:
        """Stop serving; in-flight handlers (a long `Delay`) get half a second, then are cut."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> LLMStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until `count` requests have arrived: for clients that send in background."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests after {timeout} s")
            return list(self.requests)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._start_error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)  # agents send MBs of history
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self.port = runner.addresses[0][1]
            self._stopping = asyncio.Event()
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    # --- request handling (on the server's loop) ----------------------------------------

    def record(self, request: web.Request, api: str, body: bytes, parsed: Any) -> RecordedRequest:
        """Keep a request (or a WebSocket message) for the test, waking its waiters."""
        rec = RecordedRequest(
            method=request.method,
            path=request.raw_path,
            headers=list(request.headers.items()),
            body=body,
            json=parsed,
        )
        rec.api = api
        with self._lock:
            self.requests.append(rec)
            self._lock.notify_all()
        return rec

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _next_step(self, rec: RecordedRequest) -> Step:
        with self._lock:
            script = self._script
            if isinstance(script, Sequence) and script:
                step: Step = script[min(self._cursor, len(script) - 1)]
                self._cursor += 1
                return step
        if isinstance(script, _STEPS):
            return script
        if callable(script):
            try:
                chosen = script(rec)
            except Exception as exc:  # shown to the client as a 500, kept for the test
                self.errors.append(exc)
                return Fail(500, message=f"stub script raised {exc!r}")
            return chosen if chosen is not None else default_reply(rec.json)
        return default_reply(rec.json)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            from tests.support.llm_ws import serve_responses_ws

            return await serve_responses_ws(self, request)
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        route = _route(request.method, request.path, dict(request.query), parsed)
        rec = self.record(request, route.api if route else "unknown", body, parsed)
        if route is None:
            return web.json_response(
                {"error": {"message": f"stub: no route for {request.method} {request.path}"}},
                status=404,
            )
        if route.api == "health":
            return web.json_response({"status": "ok"})
        if self.api_keys is not None and _key_of(request) not in self.api_keys:
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                },
                status=401,
            )
        if route.api == "models":
            return web.json_response(
                {
                    "object": "list",
                    "data": [{"id": "claude-haiku-4-5", "type": "model", "object": "model"}],
                }
            )
        tokens = max(1, len(body) // 4)
        if route.api == "anthropic_count":
            return web.json_response({"input_tokens": tokens})
        if route.api.endswith("_count"):
            return web.json_response({"totalTokens": tokens})
        return await self._play(request, rec, route, self._next_step(rec))

    async def _play(
        self, request: web.Request, rec: RecordedRequest, route: _Route, step: Step
    ) -> web.StreamResponse:
        while isinstance(step, Delay):
            await asyncio.sleep(step.seconds)
            step = step.then if step.then is not None else default_reply(rec.json)
        if isinstance(step, Fail):
            return self._fail(route, step)
        ctype = _SSE if route.stream and route.sse else _JSON
        if isinstance(step, Empty):
            if not route.stream:
                return web.Response(body=b"", content_type=ctype)
            return await self._send(request, route, ctype, [], cut=None)
        cut = step.after_events if isinstance(step, CutStream) else None
        reply = step if isinstance(step, Reply) else step.reply or default_reply(rec.json)
        turn = self._turn(rec, reply)
        if route.stream:
            return await self._send(request, route, ctype, self._events(route, turn, rec), cut)
        data = json.dumps(self._json(route, turn, rec)).encode()
        if cut is None:
            return web.Response(body=data, content_type=ctype, headers=self._ids_header(route))
        return await self._send(request, route, ctype, [data[: len(data) // 2]], 1, len(data))

    def _turn(self, rec: RecordedRequest, reply: Reply) -> Turn:
        usage = reply.usage or (max(1, len(rec.body) // 4), estimate_output(reply))
        return Turn(
            model=reply.model or rec.model or "stub-model",
            reply=reply,
            input_tokens=usage[0],
            output_tokens=usage[1],
            new_id=self._new_id,
        )

    def _ids_header(self, route: _Route) -> dict[str, str]:
        name = "request-id" if route.api == "anthropic" else "x-request-id"
        return {name: self._new_id("req_stub")}

    def _fail(self, route: _Route, fail: Fail) -> web.Response:
        body = fail.body
        if body is None:
            body = error_json(route.api, fail.status, fail.message)
        if isinstance(body, dict):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": _JSON, **self._ids_header(route), **fail.headers}
        return web.Response(status=fail.status, body=data, headers=headers)

    @staticmethod
    def _json(route: _Route, turn: Turn, rec: RecordedRequest) -> Any:
        body = rec.json if isinstance(rec.json, dict) else {}
        if route.api == "anthropic":
            return anthropic_json(turn)
        if route.api == "openai_chat":
            return chat_json(turn)
        if route.api == "openai_responses":
            return responses_json(turn, body)
        result = gemini_json(turn)
        return {"response": result} if route.api == "code_assist" else result

    @staticmethod
    def _events(route: _Route, turn: Turn, rec: RecordedRequest) -> list[bytes]:
        body = rec.json if isinstance(rec.json, dict) else {}
        if route.api == "anthropic":
            return anthropic_events(turn)
        if route.api == "openai_chat":
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return chat_events(turn, include_usage=usage)
        if route.api == "openai_responses":
            return responses_events(turn, body)
        chunks: list[Any] = gemini_chunks(turn)
        if route.api == "code_assist":
            chunks = [{"response": c} for c in chunks]
        if route.sse:
            return [sse(c, eol="\r\n") for c in chunks]  # Google ends events with CRLF CRLF
        # one JSON array, written element by element: "[" c0 ",\r\n" c1 ... "]"
        return [
            (b",\r\n" if i else b"[") + json.dumps(c).encode() for i, c in enumerate(chunks)
        ] + [b"]"]

    async def _send(
        self,
        request: web.Request,
        route: _Route,
        ctype: str,
        events: list[bytes],
        cut: int | None,
        length: int | None = None,
    ) -> web.StreamResponse:
        """Write events one by one; with `cut`, drop the connection after that many."""
        resp = web.StreamResponse(headers={"Cache-Control": "no-cache", **self._ids_header(route)})
        resp.content_type = ctype
        if length is not None:
            resp.content_length = length
        await resp.prepare(request)
        try:
            for index, event in enumerate(events):
                if cut is not None and index >= cut:
                    break
                await resp.write(event)
                await asyncio.sleep(self.event_delay)
            if cut is None:
                await resp.write_eof()
                return resp
        except ConnectionResetError:  # the client hung up mid-stream: as real servers, shrug
            raise _Disconnected from None
        transport = request.transport
        if transport is not None:
            transport.close()  # flushes what was written, then FIN: no terminating chunk
        raise _Disconnected


class _Disconnected(asyncio.CancelledError):
    """Raised after a deliberate cut so aiohttp ends the handler without writing more."""


@contextlib.contextmanager
def running_stub(script: Script | None = None, **kw: Any) -> Iterator[LLMStub]:
    """`with running_stub(Reply("hi")) as stub:` — started on entry, stopped on exit."""
    stub = LLMStub(script, **kw).start()
    try:
        yield stub
    finally:
        stub.stop()
