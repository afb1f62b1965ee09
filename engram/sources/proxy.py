"""`engram proxy`: a transparent reverse proxy that injects memory and captures exchanges.

The agent reaches it through its base-URL variable. Everything passes through unchanged
(method, path and query, headers but hop-by-hop ones, status, body bytes, compression);
streamed responses are forwarded chunk by chunk as they arrive. On completion paths the
proxy asks recall for a memory block within a hard time budget and injects it; any
error or a slow recall forwards the original body (it fails open). The exchange (the
original, pre-injection request and the assembled response) is journaled by one
background writer, off the request path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from aiohttp.client_exceptions import ClientError

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

# (request body, format, raw request) -> text of the memory block to inject, or None.
RecallFn = Callable[[bytes, Format, RawRequest], "str | None"]
# Finished exchanges for the journal, written together; runs on the writer thread.
Captured = tuple[RawRequest, "RawResponse | None", "str | None"]
CaptureFn = Callable[[list[Captured]], None]


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


@dataclass
class ProxySettings:
    upstream: str
    recall_budget_ms: float = 50.0
    max_body_bytes: int = 32 * 2**20  # the providers' own request limits are ~32 MB
    capture_queue: int = 1000
    inject: bool = True
    capture: bool = True
    stats: ProxyStats = field(default_factory=ProxyStats)


def decode_body(body: bytes, encoding: str | None) -> bytes:
    """A decoded copy for capture; what the client receives is never touched."""
    encoding = (encoding or "").strip().lower()
    if not encoding or encoding == "identity":
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if encoding == "br":
            import brotli

            return bytes(brotli.decompress(body))
        if encoding == "zstd":
            import zstandard

            return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
    except Exception:  # a body we cannot decode is captured as is; parsing will say so
        return body
    return body


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
        self.writer = CaptureWriter(self.capture, settings.capture_queue, self.stats)
        self._recaller = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="recall")
        self._session: ClientSession | None = None

    # -- app -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
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
        self.writer.close()

    # -- request path ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        started = time.time()
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        raw = RawRequest(
            headers=headers,
            body=body,
            timestamp_start=started,
            method=request.method,
            scheme="https",
            host=self._upstream_host(),
            path=request.path_qs,
        )
        fmt = completion_format(
            request.method, request.path, internal=is_internal(request.headers.get(INTERNAL_HEADER))
        )
        send_body = body
        if fmt is not None and self.recall is not None and body:
            send_body = await self._with_memory(body, fmt, raw)
        out_headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        assert self._session is not None
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=out_headers,
                data=send_body if send_body else None,
                allow_redirects=False,
            )
        except (TimeoutError, ClientError, OSError) as exc:
            self.stats.upstream_errors += 1
            guess = fmt or format_from_path(endpoint_of(request.path))
            message = f"engram proxy: upstream {self.upstream} unreachable: {exc}"
            return web.json_response(error_body(guess, 502, message), status=502)
        try:
            return await self._relay(request, upstream, raw, fmt)
        finally:
            upstream.release()

    async def _relay(
        self, request: web.Request, upstream: Any, raw: RawRequest, fmt: Format | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for key, value in upstream.headers.items():
            if key.lower() not in HOP_BY_HOP:
                response.headers.add(key, value)
        await response.prepare(request)
        keep = fmt is not None and self.capture is not None
        chunks: list[bytes] = []
        size = 0
        error: str | None = None
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
                if keep:
                    size += len(chunk)
                    if size <= self.settings.max_body_bytes:
                        chunks.append(chunk)
            await response.write_eof()
        except asyncio.CancelledError:
            if keep:  # the client went away: keep what arrived, marked as interrupted
                self.writer.put_nowait(
                    self._captured(raw, upstream, chunks, "client disconnected mid-stream")
                )
            raise
        except (ClientError, ConnectionResetError) as exc:
            error = f"stream interrupted: {exc!r}"
        if keep:
            if size > self.settings.max_body_bytes:
                error = f"response body of {size} bytes exceeds the capture limit"
            await self.writer.put(self._captured(raw, upstream, chunks, error))
        return response

    async def _with_memory(self, body: bytes, fmt: Format, raw: RawRequest) -> bytes:
        """The body with a memory block, or the original on error or past the budget."""
        from engram.wire.injection import inject_bytes

        assert self.recall is not None
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._recaller, self.recall, body, fmt, raw)
        try:
            block = await asyncio.wait_for(future, self.settings.recall_budget_ms / 1000)
        except TimeoutError:
            self.stats.recall_timeouts += 1
            return body
        except Exception as exc:
            self.stats.recall_errors += 1
            log.warning("recall failed, forwarding the original request: %r", exc)
            return body
        if not block:
            return body
        injected = inject_bytes(body, fmt, block)
        if injected is not body:
            self.stats.injected += 1
        return injected

    # -- capture ---------------------------------------------------------------------

    def _captured(
        self, raw: RawRequest, upstream: Any, chunks: list[bytes], error: str | None
    ) -> Captured:
        body = decode_body(b"".join(chunks), upstream.headers.get("Content-Encoding"))
        raw.timestamp_end = time.time()
        response = RawResponse(
            headers=[(k, v) for k, v in upstream.headers.items()],
            body=body,
            timestamp_start=raw.timestamp_start,
            timestamp_end=raw.timestamp_end,
            status_code=upstream.status,
        )
        return (raw, response, error)

    def _upstream_host(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.upstream).hostname or ""


class CaptureWriter:
    """A bounded queue drained by one thread that journals exchanges in batches.

    Batching keeps up with a busy proxy (one transaction per batch, not per exchange);
    when the queue is full the request waits for room instead of dropping an exchange.
    Deferred tasks (logging an injection) ride the same thread, in order.
    """

    def __init__(self, capture: CaptureFn | None, size: int, stats: ProxyStats) -> None:
        self.capture = capture
        self.stats = stats
        self.queue: queue.Queue[Captured | Callable[[], None] | None] = queue.Queue(size)
        self.thread = threading.Thread(target=self._run, name="engram-capture", daemon=True)
        self.thread.start()

    async def put(self, item: Captured) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.stats.capture_waits += 1
            await asyncio.get_running_loop().run_in_executor(None, self.queue.put, item)

    def put_nowait(self, item: Captured | Callable[[], None]) -> None:
        self.queue.put(item)  # from a cancelled handler or a worker thread: blocking is fine

    def defer(self, fn: Callable[[], None]) -> None:
        self.put_nowait(fn)

    def close(self, timeout: float = 30.0) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            # Let a burst gather: one transaction for many exchanges costs the request
            # path (which shares the interpreter) far less than one per exchange.
            time.sleep(0.01)
            batch = [item]
            while len(batch) < 200:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._flush(batch)
                    return
                batch.append(nxt)
            self._flush(batch)

    def _flush(self, batch: list[Any]) -> None:
        captures = [b for b in batch if isinstance(b, tuple)]
        if captures and self.capture is not None:
            try:
                self.capture(captures)
                self.stats.captured += len(captures)
            except Exception:
                self.stats.capture_failed += len(captures)
                log.exception("journaling %d exchanges failed", len(captures))
        for task in batch:
            if callable(task):
                try:
                    task()
                except Exception:
                    log.exception("a deferred proxy task failed")


def journal_capture(store: Any, project_hint: str | None, policy: Any) -> CaptureFn:
    """The standard capture: one journal row per exchange, exactly once, a batch per
    transaction (`policy`: the config's journaling.CapturePolicy). A locked database is
    retried rather than losing the batch."""
    from engram import journaling
    from engram.store.db import DatabaseLocked

    def capture(items: list[Captured]) -> None:
        for attempt in range(10):
            try:
                with store.write() as session:
                    for raw, response, error in items:
                        journaling.record(
                            session,
                            journaling.Capture(
                                source="proxy",
                                source_key=f"proxy:{uuid.uuid4().hex}",
                                request=raw,
                                response=response,
                                project_hint=project_hint,
                                error=error,
                            ),
                            policy,
                        )
                return
            except DatabaseLocked:
                if attempt == 9:
                    raise
                time.sleep(0.5 * (attempt + 1))

    return capture
