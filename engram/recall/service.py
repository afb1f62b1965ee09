"""`Recaller`: the one object the proxy, the addon and `engram recall` talk to.

    recaller = Recaller(store, config)          # cheap: nothing loads yet
    recaller.warm(background=True)              # start-up: model, index, a warm-up query
    result = recaller.recall(query, project, conversation)
    if result.injected: inject(result.block_text)
    later, off the request path: recaller.log_injections([(result, conversation)])

A recall ranks candidates (ranking.py: BM25 and vectors, the gate model's scores), adds
remote sources' candidates within the budget, and lets the gate decide (gate.py). Loading
the model, building the index, re-embedding after a model change and noticing memory
changes are lifecycle.py's; `Recaller` combines the two and keeps the per-thread read
connection and the per-conversation cache.

Errors are not swallowed: they surface as exceptions for the caller to fail open on.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engram.recall import gate, hybrid
from engram.recall.audit import Outcome, audit
from engram.recall.embedder import Embedder, make_embedder
from engram.recall.index import VectorIndex
from engram.recall.lifecycle import WARM_UP_QUERY, IndexLifecycle
from engram.recall.query import QueryCache
from engram.recall.query_vectors import QueryVectors
from engram.recall.ranking import POOL, CandidateRanker, Ranking
from engram.recall.remote import RemoteSource
from engram.store.db import Store, is_lock_error

__all__ = [
    "POOL",
    "WARM_UP_QUERY",
    "Ranking",
    "RecallResult",
    "Recaller",
    "normalize_project",
    "scopes_for",
    "semantic_search",
]

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


class Recaller(IndexLifecycle, CandidateRanker):
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
        self._refresh_thread: threading.Thread | None = None
        self._stopping = threading.Event()  # stop_background(): the process is exiting
        self.reindex_progress: tuple[int, int] = (0, 0)  # (done, total) in the background
        self._last_check = 0.0

    @property
    def embedder(self) -> Embedder | None:
        return self._embedder

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


def semantic_search(*args: Any, **kwargs: Any) -> list[tuple[Any, float]]:
    """`engram.recall.search.semantic_search`, also importable from here (the MCP server
    and the web UI import it from this module)."""
    from engram.recall.search import semantic_search as search

    return search(*args, **kwargs)
