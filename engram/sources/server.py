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
            raise EngramError(f"cannot listen on {self.host}:{self.port}: {self._error}")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=10)
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
