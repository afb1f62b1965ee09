"""Running `engram ui`: pick a port, serve, print the URL, open the browser, stop cleanly.

The URL (with this start's token) goes to stdout, alone on its line, so scripts and
tests can read it; everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engram.errors import EngramError
from engram.ui import instances
from engram.ui.security import Guard
from engram.ui.web import Deps

if TYPE_CHECKING:
    from engram.runtime import Runtime

DEFAULT_PORT = 8789  # engram proxy is 8787; a busy default moves on to a free port
PORT_TRIES = 10


# How long a stopping `engram ui` waits for the model to finish loading (~0.5 s).
WARM_JOIN_S = 15.0


def has_display() -> bool:
    """Whether a browser could open here: always on macOS/Windows; on Linux and the
    BSDs only under X11 or Wayland (an SSH session has neither, so the URL is printed)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def make_deps(runtime: Runtime) -> Deps:
    """The UI's parts from the composition root (engram/runtime.py)."""

    def make_recaller() -> Any:
        # Refreshes inline (background=False): a search right after an edit sees it.
        return runtime.recaller(background=False)

    return Deps(store=runtime.store, config=runtime.config, make_recaller=make_recaller)


async def _bind(deps: Deps, port: int | None, guard: Guard) -> Any:
    from engram.ui.server import start

    candidates = (
        [port] if port is not None else [*range(DEFAULT_PORT, DEFAULT_PORT + PORT_TRIES), 0]
    )
    last: OSError | None = None
    for candidate in candidates:
        try:
            runner, _guard = await start(deps, port=candidate, guard=guard)
            return runner
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise EngramError(
                    f"cannot listen on 127.0.0.1:{candidate}: {exc.strerror}"
                ) from None
            last = exc
    raise EngramError(
        f"port {port} on 127.0.0.1 is in use ({last.strerror if last else 'busy'})",
        hint="pick another with --port, or --port 0 for any free one",
    )


def run(
    runtime: Runtime,
    *,
    port: int | None = None,
    open_browser: bool = True,
    note: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
) -> None:
    """Serve until Ctrl-C or SIGTERM."""
    runtime.store.ensure()  # a bad database fails here, in one line, before anything listens
    deps = make_deps(runtime)
    asyncio.run(_serve(deps, port, open_browser, note))


async def _serve(
    deps: Deps, port: int | None, open_browser: bool, note: Callable[[str], None]
) -> None:
    guard = Guard()
    runner = await _bind(deps, port, guard)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    warming: threading.Thread | None = None
    instance = instances.Instance(
        pid=os.getpid(), port=guard.port, db=str(deps.store.path), started_at=_now()
    )
    instances.register(instance)
    try:
        url = guard.url("/")
        print(url, flush=True)
        note(f"engram ui: serving {deps.store.path} on 127.0.0.1:{guard.port}; Ctrl-C stops it")
        # Past days' counts, the embedding model and the index load off-thread.
        warming = threading.Thread(target=_warm, args=(deps,), name="engram-ui-warm", daemon=True)
        warming.start()
        if open_browser and has_display():
            threading.Thread(target=_open, args=(url,), daemon=True).start()
        elif open_browser:
            note("no display here: open the URL above in a browser on this machine")
        await stop.wait()
    finally:
        instances.unregister(instance.pid)
        await runner.cleanup()
        if warming is not None:
            # A daemon thread still inside onnxruntime when the interpreter exits aborts
            # the process (exit -6): let the model finish loading (bounded) first.
            warming.join(WARM_JOIN_S)
        deps.close()  # stops recall's own background work the same way


def _warm(deps: Deps) -> None:
    from engram.ui import health_view

    try:
        health_view.warm(deps)
    except Exception as exc:  # the page counts them itself then
        print(f"engram ui: could not count the journal: {exc}", file=sys.stderr, flush=True)
    try:
        deps.recaller.warm()
    except Exception as exc:  # search reports it when used; the pages work without it
        print(f"engram ui: recall could not start: {exc}", file=sys.stderr, flush=True)


def _open(url: str) -> None:
    import webbrowser

    with contextlib.suppress(Exception):
        webbrowser.open(url, new=2)


def _now() -> str:
    from engram.store.schema import now_iso

    return now_iso()
