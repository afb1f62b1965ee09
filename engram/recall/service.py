"""`Recaller`: the one object the proxy, the addon and `engram recall` talk to.

    recaller = Recaller(store, config)          # cheap: nothing loads yet
    recaller.warm(background=True)              # start-up: model, index, a warm-up query
    result = recaller.recall(query, project, conversation)
    if result.injected: inject(result.block_text)
    later, off the request path: recaller.log_injections([(result, conversation)])

One recall = one FTS5 query + one query embedding (~7 ms of CPU with MiniLM on a
2-core machine, on its own thread while the FTS5 query runs) + one
matrix-vector product per visible scope + a primary-key lookup of the finalists (which
also guarantees that a memory forgotten a moment ago is never returned, however stale
the in-memory index) + the gate model over a few dozen candidates (features.py,
gate_model.py). Memory changes are noticed through the events table at most every
`recall.refresh_ms` and applied on a background thread, so the request path never
embeds memories or writes to the database.

Warm: the first query a process embeds pays for lazy initialisation inside onnxruntime
(~440 ms was measured for the first request of a one-shot `engram run`, against a 50 ms
budget, so it went out bare). `warm()` therefore loads the model, builds the index and
embeds a warm-up query; `ready` only turns true after that, and `wait_ready` lets
`engram run` hold the agent back until it is (bounded).

Model changes: a store whose vectors were made by another model keeps working on BM25
alone (the gate has a model for that) while a background thread re-embeds every memory
(`engram recall reindex` does the same in the foreground with a progress bar).

Errors are not swallowed: they surface as exceptions for the caller to fail open on.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engram.recall import features, gate, gate_model, hybrid
from engram.recall.audit import Outcome, audit
from engram.recall.embedder import Embedder, make_embedder
from engram.recall.index import VectorIndex
from engram.recall.query import QueryCache
from engram.recall.query_vectors import QueryVectors
from engram.recall.remote import RemoteSource
from engram.redact import warm as warm_redaction
from engram.store import vectors as vector_store
from engram.store.db import Store, is_lock_error

log = logging.getLogger("engram.recall")

_DEFAULT: Any = object()
POOL = 20  # candidates taken from each ranker
WARM_UP_QUERY = "how do I run the tests in this project?"


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
    outcome: Outcome = Outcome.NO_CANDIDATES
    gate_model: str = ""  # which fitted model scored the candidates
    min_score: float = 0.0

    @property
    def memory_ids(self) -> list[str]:
        return [c.id for c in self.candidates if c.injected]

    def audit(self) -> dict[str, Any]:
        """What the journal keeps of this decision (audit.py)."""
        best = self.candidates[0] if self.candidates else None
        return audit(
            self.outcome,
            self.reason,
            ms=self.timings_ms.get("total"),
            memories=[(c.id, c.score) for c in self.candidates if c.injected],
            cached=self.cached,
            best=(
                {"id": best.id, "score": round(best.score, 3)}
                if best is not None and not self.injected
                else None
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "injected": self.injected,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "candidates": [c.to_dict() for c in self.candidates],
            "block_text": self.block_text,
            "query": self.query,
            "project": self.project,
            "scopes": list(self.scopes),
            "cached": self.cached,
            "min_score": round(self.min_score, 4),
            "gate_model": self.gate_model,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


@dataclass(slots=True)
class Ranking:
    """Candidates best first (`score` = the gate model's probability of helping)."""

    hits: list[hybrid.Hit]
    vectors: dict[str, np.ndarray]
    model: gate_model.GateModel
    has_vectors: bool


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
        self._embedder: Embedder | None = (
            make_embedder(self.config) if embedder is _DEFAULT else embedder
        )
        self.index = VectorIndex(store, self._embedder) if self._embedder else None
        self.background = background
        self.remote = remote
        self.cache = QueryCache()
        self.query_vectors = QueryVectors()  # embedded ahead by the proxy's recall step
        self.term_stats = hybrid.TermStats()
        self._local = threading.local()
        self._warm_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._ready = threading.Event()
        self._warm_done = threading.Event()  # a background warm-up ended (well or not)
        self._warm_thread: threading.Thread | None = None
        self._warm_error: BaseException | None = None
        self._reindex_thread: threading.Thread | None = None
        self.reindex_progress: tuple[int, int] = (0, 0)  # (done, total) in the background
        self._last_check = 0.0

    @property
    def embedder(self) -> Embedder | None:
        return self._embedder

    @property
    def ready(self) -> bool:
        """Whether a recall runs now without loading anything (model, index, first query)."""
        return self._ready.is_set()

    @property
    def has_vectors(self) -> bool:
        """Whether recall uses vectors now (not while memories are being re-embedded)."""
        return self.index is not None and self.index.complete

    # -- start-up ---------------------------------------------------------------------

    def warm(self, background: bool = False) -> None:
        """Load the embedder, build the index and embed a warm-up query (or start that on a
        daemon thread); re-embedding for a changed model goes on in the background."""
        warm_redaction()  # the gate redacts every block within the request's budget
        if self.ready:
            return
        if background:
            with self._warm_lock:
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
                if self.index.pending:
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
            embed_memories(self.store, self._embedder, pending, progress=progress)
            self.index.build()
            self.cache = QueryCache()
            log.warning("recall: re-embedding done; vectors are in use again")
        except Exception as exc:  # the next start retries; BM25 keeps working meanwhile
            log.warning("recall: re-embedding stopped: %s", exc)

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

    def cached(
        self, query: str, project: str | None, conversation: str | None
    ) -> RecallResult | None:
        """This conversation's previous result if it asked the same thing (a tool loop
        sends the whole history again with only tool results added): microseconds,
        so the proxy answers it without the worker pool."""
        if not conversation or not self.ready:
            return None
        start = time.perf_counter()
        conn = self.connection()
        self._maybe_refresh(conn)  # a changed memory invalidates the cache
        project = normalize_project(project)
        generation = self.index.generation if self.index else 0
        hit = self.cache.get(conversation, (project, query.strip()), generation)
        if hit is None:
            return None
        return replace(hit, cached=True, timings_ms={"total": (time.perf_counter() - start) * 1000})

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
            return RecallResult(
                False, "no words to search for", project=project, scopes=scopes,
                outcome=Outcome.NO_USER_TURN,
            )  # fmt: skip
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
                    outcome=Outcome.WARMING,
                )
            self.warm()
        conn = self.connection()
        try:
            self._maybe_refresh(conn)  # before the cache: a changed memory invalidates it
        except sqlite3.OperationalError as exc:
            raise self.store.locked_error() if is_lock_error(exc) else exc from None
        key = (project, query)
        generation = self.index.generation if self.index else 0
        if conversation:
            hit = self.cache.get(conversation, key, generation)
            if hit is not None:
                return replace(
                    hit, cached=True, timings_ms={"total": (time.perf_counter() - start) * 1000}
                )
        result = self._search(query, project, scopes, start)
        if conversation:
            self.cache.put(conversation, key, generation, result)
        return result

    def candidates(
        self,
        conn: sqlite3.Connection,
        query: str,
        scopes: tuple[str, ...],
        *,
        project: str | None = None,
        pool: int = POOL,
        timings: dict[str, float] | None = None,
        use_vectors: bool | None = None,
    ) -> tuple[list[hybrid.Hit], dict[str, np.ndarray], bool, np.ndarray]:
        """Both rankers' candidates with their active rows, the unit vectors known for
        them, whether vectors were used, and the gate's features (one row per hit)."""
        timings = {} if timings is None else timings
        has_vectors = self.has_vectors if use_vectors is None else use_vectors and self.has_vectors
        embedding = None
        if has_vectors and self.index is not None and self._embedder is not None:
            take = self.query_vectors.take
            embedding = _embed_pool().submit(_timed, take, self._embedder, query)
        t = time.perf_counter()
        visible = self.index.share(scopes) if self.index is not None else 1.0
        bm25_hits = hybrid.bm25_search(conn, query, scopes, pool, self.term_stats, visible)
        timings["bm25"] = (time.perf_counter() - t) * 1000
        qvec = None
        vector_hits: list[tuple[str, float]] = []
        if embedding is not None and self.index is not None:
            qvec, timings["embed"] = embedding.result()
            t = time.perf_counter()
            vector_hits = self.index.search(qvec, scopes, pool)
            timings["vector"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        merged = hybrid.merge(bm25_hits, vector_hits)
        vectors = self.index.vectors(list(merged)) if qvec is not None and self.index else {}
        hybrid.fill_cosines(merged, qvec, vectors)
        need = [h.id for h in merged.values() if not h.row]
        rows = vector_store.candidates(conn, need) if need else {}
        hits: list[hybrid.Hit] = []
        for hit in merged.values():
            if not hit.row:
                row = rows.get(hit.id)
                if row is None:
                    continue  # no longer active: the index lags a forget or supersede
                hit.row = {
                    "content": row.content,
                    "kind": row.kind,
                    "scope": row.scope,
                    "content_hash": row.content_hash,
                }
            hits.append(hit)
        info = features.query_info(
            query, lambda word: self.term_stats.doc_freq(conn, word), self.term_stats.rows
        )
        name = self._embedder.name if self._embedder else None
        model = gate_model.model_for(name, has_vectors=qvec is not None)
        x = features.features(
            info, hits, project, has_vectors=qvec is not None, prior=model.query_prior(qvec, name)
        )
        timings["features"] = (time.perf_counter() - t) * 1000
        return hits, vectors, qvec is not None, x

    def rank(
        self,
        conn: sqlite3.Connection,
        query: str,
        scopes: tuple[str, ...],
        *,
        timings: dict[str, float] | None = None,
        **options: Any,
    ) -> Ranking:
        """`candidates` (same options: project, pool, use_vectors) scored by the gate
        model (`score`: the probability that the memory helps), best first."""
        timings = {} if timings is None else timings
        hits, vectors, has_vectors, x = self.candidates(
            conn, query, scopes, timings=timings, **options
        )
        t = time.perf_counter()
        model = gate_model.model_for(
            self._embedder.name if self._embedder else None, has_vectors=has_vectors
        )
        for hit, p in zip(hits, model.predict(x), strict=True):
            hit.score = hit.order = float(p)
        hits.sort(key=lambda h: (-h.score, h.id))
        timings["gate"] = (time.perf_counter() - t) * 1000
        return Ranking(hits, vectors, model, has_vectors)

    def connection(self) -> sqlite3.Connection:
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

    def settings_for(self, model: gate_model.GateModel) -> gate.GateSettings:
        c = self.config
        return gate.GateSettings(
            model.threshold if c.min_score is None else c.min_score,
            c.max_memories,
            c.budget_tokens,
            c.dedup_threshold,
            c.relative_score,
        )

    def _search(
        self, query: str, project: str | None, scopes: tuple[str, ...], start: float
    ) -> RecallResult:
        timings: dict[str, float] = {}
        conn = self.connection()
        remote = self.remote.start(query, project) if self.remote is not None else None
        try:
            ranking = self.rank(conn, query, scopes, project=project, timings=timings)
        except sqlite3.OperationalError as exc:
            if is_lock_error(exc):
                raise self.store.locked_error() from None
            raise
        settings = self.settings_for(ranking.model)
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
            for h in ranking.hits
        ]
        if remote is not None and self.remote is not None:
            candidates += self.remote.collect(conn, remote, start, candidates, settings.min_score)
            candidates.sort(key=lambda c: c.score, reverse=True)
        decision = gate.decide(candidates, ranking.vectors, settings)
        timings["total"] = (time.perf_counter() - start) * 1000
        return RecallResult(
            decision.injected,
            decision.reason,
            candidates,
            decision.block,
            query,
            project,
            scopes,
            timings_ms=timings,
            outcome=decision.outcome,
            gate_model=ranking.model.space,
            min_score=settings.min_score,
        )

    # -- after the request --------------------------------------------------------------

    def log_injection(self, result: RecallResult, conversation: str | None) -> int:
        """Record an injection: one `inject` event per memory and its use count bumped.

        Call it off the request path (it writes). A cached result (the same query
        repeated by a tool loop) is not counted again. Returns the memories logged.
        """
        return self.log_injections([(result, conversation)])

    def log_injections(self, items: Sequence[tuple[RecallResult, str | None]]) -> int:
        """Several injections in one transaction (see store/injections.py)."""
        from engram.redact import redact
        from engram.store import injections

        todo = [
            injections.Injection(
                [(c.id, c.score) for c in r.candidates if c.injected],
                conversation or "",
                redact(" ".join(r.query.split()))[:120],
            )
            for r, conversation in items
            if r.injected and not r.cached and r.memory_ids
        ]
        if not todo:
            return 0
        with self.store.write() as session:
            return injections.record(session, todo)


# The query embedding runs on its own thread while this one queries FTS5: both release
# the GIL (onnxruntime's run, SQLite's step), so on an idle machine a recall costs the
# longer of the two, not their sum (BM25 was 1.3 ms of 11 at 10k memories, 3.4 of 25 at
# 100k). Two threads, as the proxy runs two recalls at a time (more would only wait
# for the same two cores, each with its own malloc arena in the RSS).
_EMBED_POOL: ThreadPoolExecutor | None = None
_EMBED_POOL_LOCK = threading.Lock()


def _embed_pool() -> ThreadPoolExecutor:
    global _EMBED_POOL
    if _EMBED_POOL is None:
        with _EMBED_POOL_LOCK:
            if _EMBED_POOL is None:
                _EMBED_POOL = ThreadPoolExecutor(2, thread_name_prefix="engram-embed")
    return _EMBED_POOL


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    """fn(*args) and the milliseconds it took (on the thread that ran it)."""
    t = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t) * 1000


def semantic_search(*args: Any, **kwargs: Any) -> list[tuple[Any, float]]:
    """`engram.recall.search.semantic_search`, also importable from here (the MCP server
    and the web UI import it from this module)."""
    from engram.recall.search import semantic_search as search

    return search(*args, **kwargs)
