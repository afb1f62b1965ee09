"""Running the proxy's aiohttp app on its own event loop in a background thread.

Both `engram proxy` (which then just waits for a signal) and `engram run` (which then
runs the agent) use this, so the server has one way to start and one way to stop:
stopping closes the listener, lets in-flight requests finish, and flushes captures.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from aiohttp import web

from engram.errors import EngramError

# Options an app asks of the server that runs it (e.g. the proxy: raw request bodies,
# handlers cancelled when the client hangs up), set as `app[RUNNER_OPTIONS] = {...}`.
RUNNER_OPTIONS = web.AppKey("engram_runner_options", dict)


def listen_error(host: str, port: int, error: BaseException) -> EngramError:
    reason = str(error)
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror.lower()
    return EngramError(
        f"cannot listen on {host}:{port}: {reason}",
        hint="choose another port with --listen HOST:PORT (0 picks a free one)",
    )


def check_free(host: str, port: int) -> None:
    """Fail now if `host:port` cannot be bound, before anything slow starts: a process
    that exits while the recall model loads on a daemon thread can abort in native code
    ("terminate called without an active exception", seen once in ~20 runs). The real
    bind can still fail (a race): `ServerThread.start` says so the same way."""
    if port == 0:
        return
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise listen_error(host, port, exc) from None


class ServerThread:
    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="engram-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EngramError("the proxy did not start in time")
        if self._error is not None:
            self._thread.join(timeout)
            raise listen_error(self.host, self.port, self._error)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            # Clean up what started (the app's client session, its capture writer), so
            # a failed start leaves no "Unclosed client session" behind it.
            if self._runner is not None:
                with contextlib.suppress(Exception):
                    self.loop.run_until_complete(self._runner.cleanup())
            self.loop.close()
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _serve(self) -> None:
        options = self.app.get(RUNNER_OPTIONS, {})
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=10, **options
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]

    def stop(self, timeout: float = 20.0) -> None:
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            done = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop)
            with contextlib.suppress(Exception):  # stopping anyway; captures are flushed
                done.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
