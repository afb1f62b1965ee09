"""The sync job: make MuninnDB hold exactly the local active memories, once each.

Each outbox row says "memory M changed". Rather than replaying each change, the job
reconciles M (engram/mirror/reconcile.py): it compares M's current local state with what
MuninnDB holds for it and makes the calls that close the gap, then settles every pending
row of M up to the newest one it has seen. So the calls for one memory are always in
order and never run ahead of a change still queued, a retry after a crash or a failure
repeats nothing stale, and a backlog of a thousand edits to one memory costs one round
trip. A memory whose rows wait for a retry (`next_attempt_at`) is left alone until then.

Idempotency: a single remember carries `op_id = engram-<install id>-<row>-<hash>` (the
install id is random per database, row ids are never reused); batches (no op_id allowed)
rely on MuninnDB's content de-duplication. Before any remember is sent its intent (vault,
text, op_id) is written down; if the answer is lost (crash, timeout) and the memory has
changed by the next run, the intent is replayed (same op_id, same text: MuninnDB answers
with the id it created) and that copy is forgotten, so nothing stray is left behind.
Forgets and restores mark the copy `in_doubt` first and are repeated after a crash
(engram/mirror/reconcile.py).

Failures: unreachable or 401 stops the run, keeps every row pending, and backs off
exponentially up to `muninn.max_backoff` (durably: `state` table and `next_attempt_at`);
`engram mirror sync` ignores the backoff. A refusal (-32602, -32000) fails that memory's
rows with the server's message and the rest carry on; an unreadable answer is retried up
to `max_attempts` times (three in a row stop the run). Memory use is bounded by the
page size: the outbox is read 200 rows at a time, never whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from engram.mirror.client import MuninnAuthError, MuninnClient
from engram.mirror.reconcile import MirrorSettings, PageReconciler, SyncReport
from engram.store import outbox, schema

if TYPE_CHECKING:
    from engram.config import MuninnConfig
    from engram.store.db import Store

__all__ = ["MirrorSettings", "SyncReport", "Syncer", "build", "mirror_lock"]


class Syncer:
    def __init__(
        self,
        store: Store,
        client: MuninnClient,
        settings: MirrorSettings | None = None,
        *,
        clock: Callable[[], str] = schema.now_iso,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings or MirrorSettings()
        self.clock = clock
        self._install: str | None = None

    def run(self, *, force: bool = False, max_pages: int | None = None) -> SyncReport:
        """Push every due pending change. `force` (the command line) ignores backoff;
        `max_pages` stops early (tests, measurements)."""
        report = SyncReport()
        with mirror_lock(self.store) as locked:
            if not locked:
                report.skipped = "another mirror sync is running"
                return report
            self.store.ensure()
            with self.store.read() as conn:
                states = outbox.get_states(conn)
            retry_at = states.get(outbox.K_RETRY)
            if not force and retry_at and retry_at > self.clock():
                report.skipped = f"MuninnDB was unreachable; next attempt at {retry_at}"
                return report
            self._install = self._install or outbox.install_id(self.store)
            failures = int(states.get(outbox.K_FAILURES) or 0)
            after, pages = 0, 0
            while max_pages is None or pages < max_pages:
                now = self.clock()
                with self.store.read() as conn:
                    targets, cursor = outbox.load_page(conn, after, self.settings.page, now, force)
                if cursor == after:
                    break
                after, pages = cursor, pages + 1
                page = PageReconciler(
                    self.store, self.client, self.settings, self._install, report, now
                )
                outcomes, stop = page.run(targets, force)
                state: dict[str, str | None] = {}
                next_at = None
                if stop is not None:
                    failures += 1
                    delay = min(self.settings.max_backoff, 2.0 ** (failures - 1))
                    next_at = schema.to_iso(schema.parse_iso(now) + timedelta(seconds=delay))
                    state = {
                        outbox.K_RETRY: next_at,
                        outbox.K_FAILURES: str(failures),
                        outbox.K_ERROR: _error_json(now, str(stop.error)),
                    }
                    report.stopped = str(stop.error)
                    report.auth_error = isinstance(stop.error, MuninnAuthError)
                elif report.errors:
                    state[outbox.K_ERROR] = _error_json(now, report.errors[-1])
                outbox.commit(
                    self.store,
                    outcomes,
                    max_attempts=self.settings.max_attempts,
                    retry_at=next_at,
                    state=state,
                )
                if stop is not None:
                    return report
            now = self.clock()
            with self.store.write() as session:
                outbox.set_states(
                    session, {outbox.K_SUCCESS: now, outbox.K_RETRY: None, outbox.K_FAILURES: None}
                )
            outbox.prune(self.store, now)
        return report


@contextlib.contextmanager
def mirror_lock(store: Store) -> Iterator[bool]:
    """One mirror job per database at a time (the watcher's sync, a manual sync, a pull);
    yields False when another holds it."""
    path = store.path.with_name(store.path.name + ".mirror.lock")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _error_json(at: str, message: str) -> str:
    return json.dumps({"at": at, "message": message}, ensure_ascii=False)


def build(store: Store, m: MuninnConfig, warn: Callable[[str], None] | None = None) -> Syncer:
    """A Syncer from the `[muninn]` settings (token lookup and URL checks included)."""
    from engram.mirror.vault import make_client

    return Syncer(store, make_client(m, warn), MirrorSettings.from_config(m))
