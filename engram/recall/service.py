"""`Recaller`: the one object the proxy (and `engram recall`) talks to.

    recaller = Recaller(store, config)          # cheap: nothing loads yet
    recaller.warm(background=True)              # proxy start-up: model + index off-thread
    result = recaller.recall(query, project, conversation)   # or recall_for(exchange)
    if result.injected: inject(result.block_text)
    later, off the request path: recaller.log_injection(result, conversation)

One recall = one FTS5 query + one query embedding (~0.05 ms with wordllama) + one
matrix-vector product per visible scope + a primary-key lookup of the few finalists
(which also guarantees that a memory forgotten a moment ago is never returned, however
stale the in-memory index). Memory changes are noticed through the events table at most
every `recall.refresh_ms` and applied on a background thread, so the request path never
embeds memories or writes to the database.

Errors are not swallowed here: they surface as exceptions (EngramError for known
failures) for the caller to catch and fail open on. Nothing here waits without a bound:
SQLite reads do not block under WAL, the OpenAI embedder has a timeout, and a request
that arrives before the model is loaded gets "warming up" (recall_for) instead of waiting.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engram.errors import EngramError
from engram.recall import gate, hybrid
from engram.recall.embedder import Embedder, make_embedder
from engram.recall.index import VectorIndex
from engram.recall.query import QueryCache, query_from_exchange
from engram.recall.remote import RemoteSource
from engram.store.db import Store, is_lock_error

log = logging.getLogger("engram.recall")

_DEFAULT: Any = object()


@dataclass(slots=True)
class RecallResult:
    injected: bool
    reason: str
    candidates: list[gate.Candidate] = field(default_factory=list)
    block_text: str | None = None
    query: str = ""
    project: str | None = None
    scopes: tuple[str, ...] = ()
    cached: bool = False  # the same query as this conversation's previous request
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def memory_ids(self) -> list[str]:
        return [c.id for c in self.candidates if c.injected]

    def to_dict(self) -> dict[str, Any]:
        return {
            "injected": self.injected,
            "reason": self.reason,
            "candidates": [c.to_dict() for c in self.candidates],
            "block_text": self.block_text,
            "query": self.query,
            "project": self.project,
            "scopes": list(self.scopes),
            "cached": self.cached,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def normalize_project(project: str | os.PathLike[str] | None) -> str | None:
    """A project directory as memory scopes spell it: absolute, no trailing slash."""
    if project is None:
        return None
    text = os.fspath(project).strip()
    if not text or text == "global":
        return None
    if text.startswith("/"):
        text = os.path.normpath(text)
    return text.rstrip("/") or "/"


def scopes_for(project: str | None) -> tuple[str, ...]:
    """The scopes a request in `project` sees: the project, the directories above it (a
    session started in a subdirectory still gets its repository's memories; not `/` or
    the home directory, whose memories would reach every project), and global."""
    if project is None:
        return ("global",)
    scopes = [project]
    home = os.path.expanduser("~")
    parent = os.path.dirname(project) if project.startswith("/") else ""
    while parent and parent not in ("/", home):
        scopes.append(parent)
        parent = os.path.dirname(parent)
    return (*scopes, "global")


class Recaller:
    """Recall for one store; thread-safe; loads the embedder and index once, lazily."""

    def __init__(
        self,
        store: Store,
        config: Any = None,
        *,
        embedder: Any = _DEFAULT,
        background: bool = True,
        remote: RemoteSource | None = None,
    ) -> None:
        from engram.config import RecallConfig

        self.store = store
        self.config: RecallConfig = getattr(config, "recall", config) or RecallConfig()
        if self.config.fusion not in hybrid.FUSIONS:
            raise EngramError(
                f"unknown recall.fusion {self.config.fusion!r} (one of {', '.join(hybrid.FUSIONS)})"
            )
        self._embedder: Embedder | None = (
            make_embedder(self.config) if embedder is _DEFAULT else embedder
        )
        self.index = VectorIndex(store, self._embedder) if self._embedder else None
        self.background = background
        self.cache = QueryCache()
        self.term_stats = hybrid.TermStats()
        self._local = threading.local()
        self._warm_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._warm_thread: threading.Thread | None = None
        self._warm_error: BaseException | None = None
        self._last_check = 0.0
        # Another store to ask as well (MuninnDB), built by the composition root.
        self.remote = remote

    @property
    def embedder(self) -> Embedder | None:
        return self._embedder

    @property
    def ready(self) -> bool:
        """Whether a recall would run now without loading anything."""
        return self.index is None or self.index.built

    @property
    def settings(self) -> gate.GateSettings:
        c = self.config
        return gate.GateSettings(
            c.min_score, c.max_memories, c.budget_tokens, c.dedup_threshold, c.relative_score
        )

    # -- start-up ---------------------------------------------------------------------

    def warm(self, background: bool = False) -> None:
        """Load the embedder and build the index now (or on a daemon thread)."""
        if self.ready:
            return
        if not background:
            with self._warm_lock:
                if not self.ready and self.index is not None:
                    self.index.build()
            return
        with self._warm_lock:
            if self._warm_thread is None or not self._warm_thread.is_alive():
                self._warm_thread = threading.Thread(
                    target=self._warm_quietly, name="engram-recall-warm", daemon=True
                )
                self._warm_thread.start()

    def _warm_quietly(self) -> None:
        try:
            self.warm()
            self._warm_error = None
        except Exception as exc:  # reported by the next recall, which raises it
            log.warning("recall could not start: %s", exc)
            self._warm_error = exc

    # -- keeping current --------------------------------------------------------------

    def refresh(self) -> int:
        """Apply memory changes to the index now; returns how many memories changed."""
        if self.index is None:
            return 0
        with self._refresh_lock:
            return self.index.apply_changes()

    def _maybe_refresh(self, conn: Any) -> None:
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
        real = conn.execute(
            "SELECT 1 FROM events WHERE id > ? AND action != 'inject' LIMIT 1", (cursor,)
        ).fetchone()
        if real is None and newest > cursor:  # only our own inject events: nothing to redo
            if self._refresh_lock.acquire(blocking=False):
                try:
                    if self.index.cursor == cursor:
                        self.index.cursor = newest
                finally:
                    self._refresh_lock.release()
            return
        if not self.background:
            self.refresh()
        elif not self._refresh_lock.locked():
            threading.Thread(
                target=self._refresh_quietly, name="engram-recall-refresh", daemon=True
            ).start()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the next check tries again
            log.warning("recall index refresh failed: %s", exc)

    # -- recall -----------------------------------------------------------------------

    def recall_for(self, exchange: Any, *, wait: bool = False) -> RecallResult | None:
        """Recall for a parsed request (`wire.model.Exchange`); None if it has no query.

        Until the model and index are loaded this answers "warming up" at once (and
        starts loading) unless `wait` is true: the proxy's budget is milliseconds.
        """
        query = query_from_exchange(exchange)
        if not query:
            return None
        return self.recall(query, exchange.project, exchange.conversation or None, wait=wait)

    def recall(
        self,
        query: str,
        project: str | os.PathLike[str] | None = None,
        conversation: str | None = None,
        *,
        wait: bool = True,
    ) -> RecallResult:
        """What to inject for `query` in `project` (None: global memories only)."""
        start = time.perf_counter()
        query = query.strip()
        project = normalize_project(project)
        scopes = scopes_for(project)
        if not query:
            return RecallResult(False, "empty query", project=project, scopes=scopes)
        if self._warm_error is not None:
            error, self._warm_error = self._warm_error, None
            raise error
        if not self.ready:
            if not wait:
                self.warm(background=True)
                return RecallResult(
                    False,
                    "warming up: the embedding model is loading",
                    query=query,
                    project=project,
                    scopes=scopes,
                )
            self.warm()
        conn = self._connection()
        try:
            self._maybe_refresh(conn)  # before the cache: a changed memory invalidates it
        except sqlite3.OperationalError as exc:
            raise self.store.locked_error() if is_lock_error(exc) else exc from None
        key = (project, query)
        generation = self.index.generation if self.index else 0
        if conversation:
            cached = self.cache.get(conversation, key, generation)
            if cached is not None:
                return replace(
                    cached, cached=True, timings_ms={"total": (time.perf_counter() - start) * 1000}
                )
        result = self._search(query, project, scopes, start)
        if conversation:
            self.cache.put(conversation, key, generation, result)
        return result

    def rank(
        self,
        conn: Any,
        query: str,
        scopes: tuple[str, ...],
        *,
        fusion: str | None = None,
        pool: int | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[list[hybrid.Hit], dict[str, Any]]:
        """Both rankers, fused, best first, with the finalists' rows loaded (inactive ones
        dropped); and the unit vectors known for them (for near-duplicate checks)."""
        pool = pool or max(20, self.config.max_memories * 4)
        timings = {} if timings is None else timings
        t = time.perf_counter()
        visible = self.index.share(scopes) if self.index is not None else 1.0
        bm25_hits = hybrid.bm25_search(conn, query, scopes, pool, self.term_stats, visible)
        timings["bm25"] = (time.perf_counter() - t) * 1000
        qvec = None
        vector_hits: list[tuple[str, float]] = []
        if self.index is not None and self._embedder is not None:
            t = time.perf_counter()
            qvec = self._embedder.embed([query])[0]
            timings["embed"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            vector_hits = self.index.search(qvec, scopes, pool)
            timings["vector"] = (time.perf_counter() - t) * 1000
        hits = hybrid.merge(bm25_hits, vector_hits)
        vectors = self.index.vectors(list(hits)) if self.index is not None else {}
        hybrid.fill_cosines(hits, qvec, vectors)
        ranked = hybrid.fuse(hits, fusion or self.config.fusion, has_vectors=qvec is not None)[
            :pool
        ]
        self._load_rows(conn, ranked)
        return [h for h in ranked if h.row], vectors

    def _connection(self) -> sqlite3.Connection:
        """This thread's read connection, kept open: opening and closing one per recall
        cost ~0.2 ms. Reads in WAL mode see every committed write, so it never goes stale.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.store.ensure()
            conn = sqlite3.connect(self.store.path, timeout=self.store.busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA busy_timeout = {int(self.store.busy_timeout_ms)}")
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's read connection (others close with their threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

    def _search(
        self, query: str, project: str | None, scopes: tuple[str, ...], start: float
    ) -> RecallResult:
        timings: dict[str, float] = {}
        conn = self._connection()
        remote = self.remote.start(query, project) if self.remote is not None else None
        try:
            ranked, vectors = self.rank(conn, query, scopes, timings=timings)
        except sqlite3.OperationalError as exc:
            if is_lock_error(exc):
                raise self.store.locked_error() from None
            raise
        candidates = [
            gate.Candidate(
                h.id,
                str(h.row["content"]),
                str(h.row["kind"]),
                str(h.row["scope"]),
                h.score,
                bm25=h.bm25,
                cosine=h.cosine,
                content_hash=str(h.row["content_hash"]),
            )
            for h in ranked
        ]
        if remote is not None and self.remote is not None:
            candidates += self.remote.collect(
                conn, remote, start, candidates, self.settings.min_score
            )
            candidates.sort(key=lambda c: c.score, reverse=True)
        injected, reason, block = gate.decide(candidates, vectors, self.settings)
        timings["total"] = (time.perf_counter() - start) * 1000
        return RecallResult(
            injected, reason, candidates, block, query, project, scopes, timings_ms=timings
        )

    @staticmethod
    def _load_rows(conn: Any, ranked: list[hybrid.Hit]) -> None:
        """Fetch the vector-only finalists' rows; one still active is kept, others dropped
        (the index may lag a memory that was just forgotten or superseded)."""
        need = [h.id for h in ranked if not h.row]
        if not need:
            return
        sql = (
            "SELECT id, content, kind, scope, content_hash FROM memories "
            f"WHERE status = 'active' AND id IN ({','.join('?' * len(need))})"
        )
        rows = {r[0]: r for r in conn.execute(sql, need)}
        for hit in ranked:
            row = rows.get(hit.id)
            if not hit.row and row is not None:
                hit.row = {
                    "content": row[1],
                    "kind": row[2],
                    "scope": row[3],
                    "content_hash": row[4],
                }

    # -- after the request --------------------------------------------------------------

    def log_injection(self, result: RecallResult, conversation: str | None) -> int:
        """Record an injection: one `inject` event per memory and its use count bumped.

        Call it off the request path (it writes). A cached result (the same query
        repeated by a tool loop) is not counted again. Returns the memories logged.
        """
        return self.log_injections([(result, conversation)])

    def log_injections(self, items: Sequence[tuple[RecallResult, str | None]]) -> int:
        """Several injections in one transaction: a busy proxy logs them in batches, so
        the write costs the request path (which shares the interpreter) next to nothing."""
        todo = [(r, c) for r, c in items if r.injected and not r.cached and r.memory_ids]
        if not todo:
            return 0
        from sqlalchemy import update

        from engram.redact import redact
        from engram.store import schema
        from engram.store.memories import log_event
        from engram.store.models import Memory

        now = schema.now_iso()
        logged = 0
        with self.store.write() as session:
            for result, conversation in todo:
                ids = result.memory_ids
                scores = {c.id: round(c.score, 4) for c in result.candidates if c.injected}
                excerpt = redact(" ".join(result.query.split()))[:120]
                session.execute(
                    update(Memory)
                    .where(Memory.id.in_(ids), Memory.status == "active")
                    .values(use_count=Memory.use_count + 1, last_used_at=now)
                )
                for mid in ids:
                    log_event(
                        session,
                        "inject",
                        mid,
                        "recall",
                        conversation=conversation or "",
                        score=scores.get(mid),
                        query=excerpt,
                    )
                logged += len(ids)
        return logged


SEARCH_MIN_COSINE = 0.3  # semantic search: below this, wordllama pairs are unrelated


def semantic_search(
    store: Store,
    config: Any,
    query: str,
    *,
    scope: str | None = None,
    scopes: tuple[str, ...] | None = None,
    kind: str | None = None,
    limit: int = 20,
    fusion: str | None = None,
    recaller: Recaller | None = None,
) -> list[tuple[Any, float]]:
    """`engram search` with recall's ranking: (MemoryRecord, score) best first, over one
    scope, several (`scopes`) or all of them, without the gate but with a floor, since the
    vector ranker scores every memory and a search should list related ones only: a memory
    stays if it shares a word with the query (BM25 matched it) or scores half of
    recall.min_score; semantic search (`fusion="vector"`) keeps cosines of
    SEARCH_MIN_COSINE and up. A long-lived caller (the MCP server) passes its own warm
    `recaller` and keeps it current itself (`Recaller.refresh`)."""
    from engram.store import reader

    recaller = recaller or Recaller(store, config, background=False)
    recaller.warm()
    pool = max(limit * 3, 40)
    with store.read() as conn:
        if scopes is None:
            scopes = (
                (scope,)
                if scope
                else tuple(
                    r[0]
                    for r in conn.execute(
                        "SELECT DISTINCT scope FROM memories WHERE status = 'active'"
                    )
                )
            )
        ranked, _vectors = recaller.rank(conn, query, scopes, fusion=fusion, pool=pool)
        if fusion == "vector":
            ranked = [
                h for h in ranked if h.vector_rank is not None and h.cosine >= SEARCH_MIN_COSINE
            ]
        else:
            floor = recaller.config.min_score / 2
            ranked = [h for h in ranked if h.bm25_rank is not None or h.score >= floor]
        ranked = [h for h in ranked if kind is None or h.row["kind"] == kind][:limit]
        return [(reader.get_memory(conn, h.id), h.score) for h in ranked]
