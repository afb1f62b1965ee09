"""`engram proxy`: a transparent reverse proxy that injects memory and captures exchanges.

The agent reaches it through its base-URL variable. Everything passes through unchanged
(method, raw path and query, headers but hop-by-hop ones, status, body bytes and their
compression, in both directions); streamed responses are forwarded chunk by chunk as
they arrive; WebSocket upgrades are spliced through (`ws_proxy`). On completion paths
the proxy asks recall for a memory block within a hard time budget and injects it; any
error or a slow recall forwards the original body (it fails open). The exchange (the
original, pre-injection request and the assembled response) is journaled by one
background writer, off the request path, and before the response's last bytes reach
the agent (a kill -9 after the agent has its answer loses nothing).

Failures reach the agent as failures: an upstream that fails before the response began
is a 502 in the provider's shape; one that fails after it aborts the agent's connection
(the SDK raises at once, where before it got a clean end of stream with half an answer,
or hung on a Content-Length body until its own timeout). An agent that hangs up closes
the upstream request at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from aiohttp.client_exceptions import ClientError
from yarl import URL

from engram.sources import bodies, recall_step
from engram.sources.capture_writer import Captured, CaptureFn, CaptureWriter
from engram.sources.server import RUNNER_OPTIONS
from engram.wire.detect import completion_format, endpoint_of, format_from_path
from engram.wire.markers import INTERNAL_HEADER, error_body, is_internal
from engram.wire.model import Format, RawRequest, RawResponse

log = logging.getLogger("engram.proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "proxy-connection",
    }
)

# The recall step (sources/recall_step.py): `prepare(body, format, raw)` on the event
# loop answers at once or returns a job for `run(job)` on a worker thread.
RecallFn = Any
# Finished exchanges for the journal, written together; runs on the writer thread.


@dataclass
class ProxyStats:
    requests: int = 0
    injected: int = 0
    recall_timeouts: int = 0
    recall_errors: int = 0
    captured: int = 0
    capture_failed: int = 0
    capture_waits: int = 0  # times a request waited for the writer (backpressure)
    upstream_errors: int = 0
    client_disconnects: int = 0
    too_large: int = 0
    websockets: int = 0  # WebSocket sessions spliced through
    websockets_uncaptured: int = 0  # ... of a protocol engram does not read
    # recall outcomes of the completion requests (recall/audit.py), for `engram run`
    recall_outcomes: dict[str, int] = field(default_factory=dict)


@dataclass
class ProxySettings:
    upstream: str
    recall_budget_ms: float = 50.0
    max_body_bytes: int = 32 * 2**20  # the providers' own request limits are ~32 MB; 0: none
    capture_queue: int = 1000
    inject: bool = True
    capture: bool = True
    # The longest a response's last bytes wait for its exchange to be journaled (a
    # locked database); past it they go anyway and the exchange stays queued.
    durable_wait_s: float = 2.0
    # Where finished exchanges are spooled so the last bytes need not wait for the
    # journal's commit (capture_spool.spool_dir); None: they wait for it.
    spool_dir: Path | None = None
    stats: ProxyStats = field(default_factory=ProxyStats)


# An upstream that fails while we read its response (reset, FIN mid-body, bad framing,
# read timeout); aiohttp raises these.
UPSTREAM_ERRORS = (ClientError, OSError, TimeoutError)
# Headers aiohttp's client would add on its own: the upstream sees only what the agent sent.
SKIP_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})
# What ends a stream, per format: the chunk holding it is journaled before it is released.
STREAM_END = {
    Format.ANTHROPIC: (b"message_stop", b"event: error"),
    Format.OPENAI_CHAT: (b"[DONE]",),
    Format.OPENAI_RESPONSES: (
        b"response.completed",
        b"response.failed",
        b"response.incomplete",
        b"event: error",
    ),
    Format.GEMINI: (b"finishReason",),
}


def bound_heap() -> None:
    """Let glibc return large freed blocks to the system (a fixed 1 MB mmap threshold).

    glibc raises its mmap threshold each time a large mmapped block is freed, so later
    large blocks (onnxruntime's buffers, with its arena off) come from the heap and stay
    in RSS after they are freed. Measured with MiniLM on this machine, two threads:
    loaded 215 -> 173 MB, after bursts of 16 queries embedded together 260 -> 182 MB;
    CPU per query within the noise (8.4-8.9 ms alone, 4.4-4.5 ms batched, either way).
    A no-op where there is no glibc `mallopt` (macOS, musl ignores it)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD


class UpstreamBroke(Exception):
    """Reading the upstream's response failed; `cause` says how."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.cause = cause


class Proxy:
    def __init__(
        self,
        settings: ProxySettings,
        recall: RecallFn | None = None,
        capture: CaptureFn | None = None,
    ) -> None:
        self.settings = settings
        self.recall = recall if settings.inject else None
        self.capture = capture if settings.capture else None
        self.stats = settings.stats
        self.upstream = settings.upstream.rstrip("/")
        # One writer keeps SQLite writes serial, batched and off the event loop; the
        # recall pool lets a slow recall be abandoned at the budget without blocking it.
        self.writer = CaptureWriter(
            self.capture, settings.capture_queue, self.stats, settings.spool_dir
        )
        self._recaller = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="recall")
        self._session: ClientSession | None = None

    # -- app -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        # Bodies arrive as sent (a gzip request stays gzip, forwarded byte-exact), and a
        # client that hangs up cancels its handler, which closes the upstream request.
        app[RUNNER_OPTIONS] = {"auto_decompress": False, "handler_cancellation": True}
        return app

    async def _start(self, _app: web.Application) -> None:
        self._session = ClientSession(
            connector=TCPConnector(limit=0, ttl_dns_cache=300),
            auto_decompress=False,
            trust_env=False,
            timeout=ClientTimeout(total=None, sock_connect=30, sock_read=600),
        )

    async def _stop(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()
        self.close()

    def close(self) -> None:
        """Wait for queued captures (nothing is lost on a clean stop)."""
        self._recaller.shutdown(wait=False, cancel_futures=True)
        recall_step.stop_background(self.recall)  # no thread left inside onnxruntime
        self.writer.close()

    # -- request path ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").strip().lower() == "websocket":
            from engram.sources.ws_proxy import splice

            return await splice(self, request)
        self.stats.requests += 1
        started = time.time()
        fmt = completion_format(
            request.method, request.path, internal=is_internal(request.headers.get(INTERNAL_HEADER))
        )
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        raw = RawRequest(
            headers=headers,
            body=b"",
            timestamp_start=started,
            method=request.method,
            scheme="https",
            host=self._upstream_host(),
            path=request.raw_path,
        )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return await self._too_large(request, fmt, raw)
        # The body goes upstream byte-exact with its headers; recall and capture read a
        # decoded copy, bounded like the response side.
        encoding = request.headers.get("Content-Encoding")
        plain, decode_error = body, None
        if encoding and body and fmt is not None:
            decoded = bodies.decode(body, encoding, self.settings.max_body_bytes)
            plain, decode_error = decoded.data, decoded.error
        raw.body = plain
        send_body = body
        if fmt is not None and self.recall is not None and plain and decode_error is None:
            injected = await self._with_memory(plain, fmt, raw)
            if injected is not plain:
                send_body = (bodies.encode(injected, encoding) or body) if encoding else injected
        elif fmt is not None and body:
            raw.recall = {"outcome": "disabled"}
        if raw.recall is not None:
            outcome = str(raw.recall.get("outcome"))
            self.stats.recall_outcomes[outcome] = self.stats.recall_outcomes.get(outcome, 0) + 1
        out_headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        assert self._session is not None
        try:
            upstream = await self._session.request(
                request.method,
                URL(self.upstream + request.raw_path, encoded=True),
                headers=out_headers,
                data=send_body if send_body else None,
                allow_redirects=False,
                skip_auto_headers=SKIP_AUTO_HEADERS,
            )
        except UPSTREAM_ERRORS as exc:
            message = f"upstream {self.upstream} unreachable: {exc}"
            return await self._bad_gateway(request, fmt, raw, message, decode_error)
        try:
            return await self._relay(request, upstream, raw, fmt, decode_error)
        finally:
            upstream.release()

    async def _relay(
        self,
        request: web.Request,
        upstream: Any,
        raw: RawRequest,
        fmt: Format | None,
        note: str | None = None,
    ) -> web.StreamResponse:
        """Forward the response as it arrives. Headers go to the agent with the first body
        byte, so an upstream that fails before that is a clean 502; one that fails after
        it aborts the agent's connection (a transport error there, never a clean end)."""
        keep = fmt is not None and self.capture is not None
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in HOP_BY_HOP:
                response.headers.add(key, value)
        limit = self.settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        hold = _Holdback(fmt, upstream.headers.get("Content-Type", "")) if keep else None
        try:
            while True:
                chunk = await self._read(upstream)
                if not chunk:
                    break
                if keep:
                    size += len(chunk)
                    if not limit or size <= limit:
                        chunks.append(chunk)
                if not response.prepared:
                    await response.prepare(request)
                out = hold.push(chunk) if hold is not None else chunk
                if out:
                    await response.write(out)
            if not response.prepared:
                await response.prepare(request)
            if keep:
                error = note
                if limit and size > limit:
                    error = f"response body of {size} bytes exceeds the capture limit"
                await self.writer.put_durable(
                    self._captured(raw, upstream, chunks, error), self.settings.durable_wait_s
                )
            if hold is not None and hold.held:
                await response.write(hold.held)
            await response.write_eof()
        except UpstreamBroke as exc:
            if not response.prepared:
                message = f"upstream {self.upstream} failed before answering: {exc.cause!r}"
                return await self._bad_gateway(request, fmt, raw, message, note)
            self.stats.upstream_errors += 1
            error = f"stream interrupted: {exc.cause!r}"
            if keep:
                await self.writer.put_durable(
                    self._captured(raw, upstream, chunks, error), self.settings.durable_wait_s
                )
            abort(request)
        except ConnectionError:  # writing to the agent failed: it went away
            self._client_gone(upstream, raw, chunks if keep else None)
        except asyncio.CancelledError:  # the agent hung up (handler cancellation)
            self._client_gone(upstream, raw, chunks if keep else None)
            raise
        return response

    @staticmethod
    async def _read(upstream: Any) -> bytes:
        try:
            return bytes(await upstream.content.readany())
        except UPSTREAM_ERRORS as exc:
            raise UpstreamBroke(exc) from exc

    def _client_gone(self, upstream: Any, raw: RawRequest, chunks: list[bytes] | None) -> None:
        """Close the upstream request at once (no socket left waiting for its read
        timeout) and keep what arrived, marked as interrupted."""
        self.stats.client_disconnects += 1
        upstream.close()
        if chunks is not None:
            self.writer.put_nowait(
                self._captured(raw, upstream, chunks, "client disconnected mid-stream")
            )

    async def _bad_gateway(
        self,
        request: web.Request,
        fmt: Format | None,
        raw: RawRequest,
        message: str,
        note: str | None = None,
    ) -> web.Response:
        """The upstream failed before the agent got a byte: a 502 in the provider's shape
        (the SDKs report it, and retry it), and the failed exchange is journaled."""
        self.stats.upstream_errors += 1
        if fmt is not None and self.capture is not None:
            raw.timestamp_end = time.time()
            error = message if note is None else f"{message}; {note}"
            await self.writer.put_durable((raw, None, error), self.settings.durable_wait_s)
        guess = fmt or format_from_path(endpoint_of(request.path))
        return web.json_response(error_body(guess, 502, f"engram proxy: {message}"), status=502)

    async def _too_large(
        self, request: web.Request, fmt: Format | None, raw: RawRequest
    ) -> web.Response:
        """A body over `proxy.max_body_mb`: the provider-shaped 413 the agent's SDK reports,
        and a `failed` journal row that says why (the body itself is not kept)."""
        self.stats.too_large += 1
        mb = self.settings.max_body_bytes / 2**20
        message = (
            f"engram proxy: request body exceeds proxy.max_body_mb ({mb:g} MB); "
            "raise it (0 removes the limit) or send less"
        )
        if fmt is not None and self.capture is not None:
            raw.timestamp_end = time.time()
            await self.writer.put_durable((raw, None, message), self.settings.durable_wait_s)
        guess = fmt or format_from_path(endpoint_of(request.path))
        response = web.json_response(error_body(guess, 413, message), status=413)
        response.force_close()  # the rest of the body is still on the wire
        return response

    async def _with_memory(self, body: bytes, fmt: Format, raw: RawRequest) -> bytes:
        """The body with a memory block, or the original on error or past the budget.
        The decision, whatever it is, is recorded on `raw.recall` for the journal."""
        from engram.recall.audit import Outcome, audit, budget_exceeded
        from engram.wire.injection import inject_bytes

        assert self.recall is not None
        budget = self.settings.recall_budget_ms
        try:
            prepare = getattr(self.recall, "prepare", None)
            if prepare is not None:  # the recall step: answers at once or hands a job
                job: Any = prepare(body, fmt, raw)
                work: Any = (self.recall.run, job) if hasattr(job, "budget_ms") else None
                budget = getattr(job, "budget_ms", budget)
            else:  # a plain function (body, fmt, raw) -> block
                work = (self.recall, body, fmt, raw)
            if work is not None:
                loop = asyncio.get_running_loop()
                future = loop.run_in_executor(self._recaller, *work)
                job = await asyncio.wait_for(future, budget / 1000)
        except TimeoutError:
            self.stats.recall_timeouts += 1
            raw.recall = budget_exceeded(budget)
            return body
        except Exception as exc:
            self.stats.recall_errors += 1
            log.warning("recall failed, forwarding the original request: %r", exc)
            raw.recall = audit(Outcome.FAILED, f"failed: {exc}")
            return body
        block = getattr(job, "block", job)
        raw.recall = getattr(job, "record", None)
        if not block:
            return body
        injected = inject_bytes(body, fmt, block, getattr(job, "walked", None))
        if injected is not body:
            self.stats.injected += 1
        return injected

    # -- capture ---------------------------------------------------------------------

    def _captured(
        self, raw: RawRequest, upstream: Any, chunks: list[bytes], error: str | None
    ) -> Captured:
        decoded = bodies.decode(
            b"".join(chunks), upstream.headers.get("Content-Encoding"), self.settings.max_body_bytes
        )
        raw.timestamp_end = time.time()
        if decoded.error and not error:
            error = decoded.error
        response = RawResponse(
            headers=[(k, v) for k, v in upstream.headers.items()],
            body=decoded.data,
            timestamp_start=raw.timestamp_start,
            timestamp_end=raw.timestamp_end,
            status_code=upstream.status,
        )
        return (raw, response, error)

    def _upstream_host(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.upstream).hostname or ""


class _Holdback:
    """Holds back the chunk that may be a response's last, so that the exchange is
    journaled before the agent has its final byte. A streamed chunk is held only when it
    carries the format's end marker (streaming latency is unchanged); a plain body, which
    no client uses before it is whole, is always one chunk behind."""

    def __init__(self, fmt: Format | None, content_type: str) -> None:
        streaming = content_type.split(";", 1)[0].strip().lower() == "text/event-stream"
        self.markers = STREAM_END.get(fmt, ()) if (streaming and fmt is not None) else None
        self.held = b""
        self._tail = b""  # the end of the previous chunk: a marker may straddle two

    def push(self, chunk: bytes) -> bytes:
        out, self.held = self.held, b""
        if self.markers is None or any(m in self._tail + chunk for m in self.markers):
            self.held = chunk
        else:
            out += chunk
        self._tail = chunk[-32:]
        return out


def abort(request: web.Request) -> None:
    """Reset the agent's connection (TCP RST): a transport error in every framing, where
    a plain close could read as the end of a close-delimited body."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
