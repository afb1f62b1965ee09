"""The proxy writer's deferred tasks (logging an injection), retried while the database
takes no writes.

They run on the capture writer's thread after each batch, off the request path. One
that fails because the database takes no writes now (locked past its busy timeout, a
full disk, an I/O error) used to get that one attempt: a lock held longer than the busy
timeout (a long analysis transaction, a backup, `sqlite3` open on the file) lost that
request's injection log, silently. Now it is held and retried on the capture writer's
schedule (engram/backoff.py: 0.1 s, doubling up to 5 s), all held tasks in one pass per
wait, so a locked database costs one busy timeout per wait, not one per request. After
TASK_ATTEMPTS failed passes (~21 s of waits plus a busy timeout each: 21-70 s of a
database refusing writes, with the default 5 s timeout) a task is dropped with one
warning; a failure no wait cures (a bug) is logged at once, as before.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from engram.backoff import Backoff

log = logging.getLogger("engram.proxy")

TASK_ATTEMPTS = 10  # failed passes before a held task is dropped


class _Held:
    """A deferred task and the passes it failed in. Retried by calling it again, so a
    task keeps what it writes (the recall step's injection log takes its items on its
    first call)."""

    __slots__ = ("failures", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.failures = 0


class DeferredTasks:
    """The tasks the database refused for now, and when to try them again."""

    def __init__(self, backoff: Backoff, attempts: int = TASK_ATTEMPTS) -> None:
        self.backoff = backoff
        self.attempts = attempts
        self.held: list[_Held] = []

    def run(self, new: list[Callable[[], None]], final: bool = False) -> None:
        """Run the held tasks (when their retry is due), then `new`, in order. A task
        failing because the database takes no writes holds it and every one after it
        for the next pass; one held for `attempts` passes (or still failing as the
        proxy stops: `final`) is dropped, with one warning for all dropped together."""
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
                    log.exception("a deferred proxy task failed")
                    continue
                self._hold(todo[at:], exc, final)
                return
        self.backoff.succeeded()

    def _hold(self, tasks: list[_Held], exc: Exception, final: bool) -> None:
        delay = self.backoff.failed()
        for task in tasks:
            task.failures += 1
        gone = [t for t in tasks if final or t.failures >= self.attempts]
        self.held = [t for t in tasks if t.failures < self.attempts and not final]
        if gone:
            names = sorted({getattr(t.fn, "__name__", "task") for t in gone})
            log.warning(
                "dropping %d deferred writes (%s) after %d attempts: %s",
                len(gone),
                ", ".join(names),
                max(t.failures for t in gone),
                exc,
            )
        else:
            log.debug("deferred writes retry in %g s: %s", delay, exc)


def wait_cures(exc: Exception) -> bool:
    """The database, not what was written, failed: locked past the busy timeout, a full
    disk, an I/O error, a read-only file, a missing table (a migration under way)."""
    from sqlalchemy.exc import OperationalError

    from engram.store.db import DatabaseLocked, DiskFull

    return isinstance(
        exc, DatabaseLocked | DiskFull | OperationalError | sqlite3.OperationalError | OSError
    )
