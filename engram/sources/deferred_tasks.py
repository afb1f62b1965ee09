"""Deferred writes (logging an injection, the addon's journal rows), handed over without
waiting and retried while the database takes no writes.

The proxy's capture writer runs them on its thread after each batch; the mitmproxy addon,
which has no capture writer, on a thread of its own (`DeferredWriter`). Off the request
path either way, and the caller never waits: `add` only appends to a list, so a recall
worker that logs an injection returns at once, and its request keeps its recall budget,
even while the writer is behind or the database is locked.

A task that fails because the database takes no writes now (locked past its busy
timeout, a full disk, an I/O error) used to get that one attempt: a lock held longer than
the busy timeout (a long analysis transaction, a backup, `sqlite3` open on the file)
lost that request's injection log, silently in the addon (its exception went to a future
nobody read). Now it is held and retried on the capture writer's schedule (0.1 s,
doubling up to 5 s), all held tasks in one pass per wait, so a locked database costs one
busy timeout per wait, not one per request. After TASK_ATTEMPTS failed passes (~21 s of
waits plus a busy timeout each: 21-70 s of a database refusing writes, with the default
5 s timeout) a task is dropped with one warning; a failure no wait cures (a bug) is
logged at once, as before.

Bounded: at most TASK_BOUND tasks wait (handed over, or held for a retry); past it a new
task is dropped, with one warning until everything waiting has been written. A proxy
hands over about one task per writer pass (the recall step gathers the injections of
a pass into one), so the bound is met only by a writer stuck for a long time; the addon
hands over one per flow (its journal row, with the flow's bodies: ~1,000 of Claude
Code's 75 KB requests is ~100 MB).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable

from engram.backoff import Backoff
from engram.errors import log_failure, one_line

log = logging.getLogger("engram.proxy")

RETRY_FIRST_S = 0.1  # the first wait after the database refused a write, doubled ...
RETRY_MAX_S = 5.0  # ... up to this (the proxy's journal retries use the same)
TASK_ATTEMPTS = 10  # failed passes before a held task is dropped
TASK_BOUND = 1000  # tasks waiting (handed over or held) before new ones are dropped


class _Held:
    """A deferred task and the passes it failed in. Retried by calling it again, so a
    task keeps what it writes (the recall step's injection log takes its items on its
    first call)."""

    __slots__ = ("failures", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.failures = 0


class DeferredTasks:
    """The tasks handed over for the next pass, those the database refused for now, and
    when to try them again. `add` from any thread; `run` from the one thread that writes."""

    def __init__(
        self,
        backoff: Backoff | None = None,
        attempts: int = TASK_ATTEMPTS,
        bound: int = TASK_BOUND,
        logger: logging.Logger = log,
    ) -> None:
        self.backoff = backoff if backoff is not None else Backoff(RETRY_FIRST_S, RETRY_MAX_S)
        self.attempts = attempts
        self.bound = bound
        self.log = logger
        self.held: list[_Held] = []
        self.dropped: Counter[str] = Counter()  # tasks dropped, by name (lost writes)
        self._new: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._full = False  # said so since everything waiting was last written

    def add(self, fn: Callable[[], None]) -> bool:
        """Hand `fn` over for the next pass, without waiting. True when it is the first
        handed over since the last pass (the caller wakes the writer then). Past the
        bound it is dropped, with one warning until everything waiting is written."""
        with self._lock:
            waiting = len(self._new) + len(self.held)
            if waiting < self.bound:
                self._new.append(fn)
                return len(self._new) == 1
            self.dropped[_name(fn)] += 1
            warn, self._full = not self._full, True
        if warn:
            self.log.warning(
                "%d deferred writes wait for the database: dropping new ones (%s) until "
                "they are written",
                waiting,
                _name(fn),
            )
        return False

    @property
    def pending(self) -> bool:
        """Tasks were handed over since the last pass."""
        return bool(self._new)

    def run(self, final: bool = False) -> None:
        """Run the held tasks (when their retry is due), then those handed over, in
        order. A task failing because the database takes no writes holds it and every
        one after it for the next pass; one held for `attempts` passes (or still failing
        as the writer stops: `final`) is dropped, with one warning for all dropped
        together."""
        with self._lock:
            new, self._new = self._new, []
        if self.held and not (final or self.backoff.ready()):
            self.held.extend(_Held(fn) for fn in new)  # no write now: wait with the others
            return
        todo = [*self.held, *(_Held(fn) for fn in new)]
        self.held = []
        for at, task in enumerate(todo):
            try:
                task.fn()
            except Exception as exc:
                if not wait_cures(exc):
                    log_failure(self.log, f"a deferred write ({_name(task.fn)}) failed", exc)
                    continue
                self._hold(todo[at:], exc, final)
                return
        self.backoff.succeeded()
        self._full = False

    def _hold(self, tasks: list[_Held], exc: Exception, final: bool) -> None:
        delay = self.backoff.failed()
        for task in tasks:
            task.failures += 1
        gone = [t for t in tasks if final or t.failures >= self.attempts]
        self.held = [t for t in tasks if t.failures < self.attempts and not final]
        if gone:
            self.dropped.update(_name(t.fn) for t in gone)
            self.log.warning(
                "dropping %d deferred writes (%s) after %d attempts: %s",
                len(gone),
                ", ".join(sorted({_name(t.fn) for t in gone})),
                max(t.failures for t in gone),
                one_line(exc),
            )
        else:
            self.log.debug("deferred writes retry in %g s: %s", delay, one_line(exc))


class DeferredWriter:
    """A thread of its own that runs deferred tasks with DeferredTasks' retries, for an
    edge without a capture writer (the mitmproxy addon). `defer` never waits: a flow
    hook on mitmproxy's event loop and a recall worker both call it."""

    def __init__(
        self,
        attempts: int = TASK_ATTEMPTS,
        bound: int = TASK_BOUND,
        logger: logging.Logger = log,
        name: str = "engram-log",
    ) -> None:
        self.tasks = DeferredTasks(None, attempts, bound, logger)
        self._wake = threading.Event()
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def defer(self, fn: Callable[[], None]) -> None:
        if self.tasks.add(fn):
            self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Run what is handed over and held once more, now; what still fails is dropped
        (one warning). Waits for that at most `timeout` seconds."""
        self._stopping = True
        self._wake.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            wait = None
            if self.tasks.held:
                wait = max(0.0, self.tasks.backoff.until - time.monotonic())
            self._wake.wait(wait)
            self._wake.clear()  # before the pass takes the new tasks: none is missed
            stopping = self._stopping
            try:
                self.tasks.run(final=stopping)
            except Exception as exc:  # a bug here must not end the thread
                log_failure(self.tasks.log, "the deferred writer failed", exc)
            if stopping:
                return


def _name(fn: Callable[[], None]) -> str:
    return getattr(fn, "__name__", "task")


def wait_cures(exc: Exception) -> bool:
    """The database, not what was written, failed: locked past the busy timeout, a full
    disk, an I/O error, a read-only file, a missing table (a migration under way)."""
    from sqlalchemy.exc import OperationalError

    from engram.store.db import DatabaseLocked, DiskFull

    return isinstance(
        exc, DatabaseLocked | DiskFull | OperationalError | sqlite3.OperationalError | OSError
    )
