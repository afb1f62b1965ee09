"""Getting recall ready and keeping its index current: the warm-up, the background
re-embedding after a model change, and applying memory changes to the index.

Memory changes are noticed through the events table at most every `recall.refresh_ms`
and applied on a background thread, so the request path never embeds memories or writes
to the database.

Warm: the first query a process embeds pays for lazy initialisation inside onnxruntime
(~440 ms was measured for the first request of a one-shot `engram run`, against a 50 ms
budget, so it went out bare). `warm()` therefore loads the model, builds the index and
embeds a warm-up query; `ready` only turns true after that, and `wait_ready` lets
`engram run` hold the agent back until it is (bounded).

Model changes: a store whose vectors were made by another model keeps working on BM25
alone (the gate has a model for that) while a background thread re-embeds every memory
(`engram recall reindex` does the same in the foreground with a progress bar).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

from engram.recall import hybrid
from engram.recall.embedder import Embedder
from engram.recall.index import VectorIndex
from engram.recall.query import QueryCache
from engram.redact import warm as warm_redaction
from engram.store import vectors as vector_store
from engram.store.db import Store

if TYPE_CHECKING:
    from engram.config import RecallConfig

log = logging.getLogger("engram.recall")

WARM_UP_QUERY = "how do I run the tests in this project?"


class IndexLifecycle:
    """The warm-up, re-embedding and refresh half of `Recaller` (service.py), whose
    `__init__` sets every attribute declared here."""

    store: Store
    config: RecallConfig
    index: VectorIndex | None
    _embedder: Embedder | None
    background: bool
    cache: QueryCache
    term_stats: hybrid.TermStats
    _warm_lock: threading.Lock
    _refresh_lock: threading.Lock
    _ready: threading.Event
    _warm_done: threading.Event
    _warm_thread: threading.Thread | None
    _warm_error: BaseException | None
    _reindex_thread: threading.Thread | None
    _refresh_thread: threading.Thread | None
    _stopping: threading.Event
    reindex_progress: tuple[int, int]
    _last_check: float

    @property
    def ready(self) -> bool:
        """Whether a recall runs now without loading anything (model, index, first query)."""
        return self._ready.is_set()

    # -- start-up ---------------------------------------------------------------------

    def warm(self, background: bool = False) -> None:
        """Load the embedder, build the index and embed a warm-up query (or start that on a
        daemon thread); re-embedding for a changed model goes on in the background."""
        warm_redaction()  # the gate redacts every block within the request's budget
        if self.ready:
            return
        if background:
            with self._warm_lock:
                if self._stopping.is_set():
                    return
                if self._warm_thread is None or not self._warm_thread.is_alive():
                    self._warm_done.clear()
                    self._warm_thread = threading.Thread(
                        target=self._warm_quietly, name="engram-recall-warm", daemon=True
                    )
                    self._warm_thread.start()
            return
        with self._warm_lock:
            if self.ready:
                return
            if self._embedder is not None and self.index is not None:
                self._embedder.load()
                self.index.build()
                self._embedder.embed_query(WARM_UP_QUERY)  # onnxruntime's lazy init
                if self.index.pending and not self._stopping.is_set():
                    self._start_reindex()
            with self.store.read() as conn:  # SQLite's page cache and FTS5 structures
                hybrid.bm25_search(conn, WARM_UP_QUERY, ("global",), 5, self.term_stats)
            self._ready.set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait (bounded) until recall is warm, or its warm-up failed (`warm_error`);
        starts warming if nobody has. True when ready."""
        if self.ready:
            return True
        self.warm(background=True)
        self._warm_done.wait(max(0.0, timeout))
        return self.ready

    @property
    def warm_error(self) -> BaseException | None:
        return self._warm_error

    def _warm_quietly(self) -> None:
        try:
            self.warm()
            self._warm_error = None
        except Exception as exc:  # reported by the next recall, which raises it
            log.warning("recall could not start: %s", exc)
            self._warm_error = exc
        finally:
            self._warm_done.set()

    def _start_reindex(self) -> None:
        assert self.index is not None and self._embedder is not None
        pending = list(self.index.pending)
        log.warning(
            "recall: %d memories have no vector of %s yet; re-embedding them in the "
            "background (recall uses BM25 until done; `engram recall reindex` shows progress)",
            len(pending),
            self._embedder.name,
        )
        self._reindex_thread = threading.Thread(
            target=self._reindex_quietly, args=(pending,), name="engram-reindex", daemon=True
        )
        self._reindex_thread.start()

    def _reindex_quietly(self, pending: list[str]) -> None:
        from engram.recall.reindex import embed_memories

        assert self.index is not None and self._embedder is not None

        def progress(done: int, total: int) -> None:
            self.reindex_progress = (done, total)

        try:
            embed_memories(
                self.store, self._embedder, pending, progress=progress, stop=self._stopping
            )
            if self._stopping.is_set():
                return  # the next start re-embeds what is left
            self.index.build()
            self.cache = QueryCache()
            log.warning("recall: re-embedding done; vectors are in use again")
        except Exception as exc:  # the next start retries; BM25 keeps working meanwhile
            log.warning("recall: re-embedding stopped: %s", exc)

    # -- stopping ---------------------------------------------------------------------

    def stop_background(self, timeout: float = 10.0) -> bool:
        """Stop the background work (warm-up, re-embedding, index refresh) and wait for it,
        at most `timeout` seconds; True when none is left. A process must call this before
        it exits: its threads are daemons, and one still inside onnxruntime while the
        interpreter exits aborts the process ("terminate called without an active
        exception", exit -6) as onnxruntime's globals are torn down under it. Warm-up takes
        well under a second, and re-embedding stops between batches of 64 (~0.7 s)."""
        self._stopping.set()
        deadline = time.monotonic() + max(0.0, timeout)
        busy = False
        for thread in (self._warm_thread, self._reindex_thread, self._refresh_thread):
            if thread is None or thread is threading.current_thread():
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            busy = busy or thread.is_alive()
        if busy:
            log.warning("recall: background work still running after %.0f s at exit", timeout)
        return not busy

    # -- keeping current --------------------------------------------------------------

    def refresh(self) -> int:
        """Apply memory changes to the index now; returns how many memories changed."""
        if self.index is None:
            return 0
        with self._refresh_lock:
            return self.index.apply_changes()

    def _maybe_refresh(self, conn: sqlite3.Connection) -> None:
        if self.index is None:
            return
        now = time.monotonic()
        if now - self._last_check < self.config.refresh_ms / 1000:
            return
        self._last_check = now
        cursor = self.index.cursor
        newest = self.index.change_counter(conn)
        if newest == cursor:
            return
        if newest > cursor and not vector_store.memory_changes_after(conn, cursor):
            # only our own inject events: nothing to redo
            if self._refresh_lock.acquire(blocking=False):
                try:
                    if self.index.cursor == cursor:
                        self.index.cursor = newest
                finally:
                    self._refresh_lock.release()
            return
        if not self.background:
            self.refresh()
        elif not self._refresh_lock.locked() and not self._stopping.is_set():
            self._refresh_thread = threading.Thread(
                target=self._refresh_quietly, name="engram-recall-refresh", daemon=True
            )
            self._refresh_thread.start()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the next check tries again
            log.warning("recall index refresh failed: %s", exc)
