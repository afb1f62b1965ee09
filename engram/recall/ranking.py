"""Candidate search: both rankers' candidates, their features, and the gate model's
scores (what `Recaller.recall` then hands to the gate).

One recall = one FTS5 query + one query embedding (~7 ms of CPU with MiniLM on a
2-core machine, on its own thread while the FTS5 query runs) + one
matrix-vector product per visible scope + a primary-key lookup of the finalists (which
also guarantees that a memory forgotten a moment ago is never returned, however stale
the in-memory index) + the gate model over a few dozen candidates (features.py,
gate_model.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.recall import features, gate, gate_model, hybrid
from engram.recall.embedder import Embedder
from engram.recall.index import VectorIndex
from engram.recall.query_vectors import QueryVectors
from engram.store import vectors as vector_store

if TYPE_CHECKING:
    from engram.config import RecallConfig

POOL = 20  # candidates taken from each ranker


@dataclass(slots=True)
class Ranking:
    """Candidates best first (`score` = the gate model's probability of helping)."""

    hits: list[hybrid.Hit]
    vectors: dict[str, np.ndarray]
    model: gate_model.GateModel
    has_vectors: bool


class CandidateRanker:
    """The candidate-search half of `Recaller` (service.py), whose `__init__` sets every
    attribute declared here."""

    config: RecallConfig
    index: VectorIndex | None
    _embedder: Embedder | None
    query_vectors: QueryVectors
    term_stats: hybrid.TermStats

    @property
    def has_vectors(self) -> bool:
        """Whether recall uses vectors now (not while memories are being re-embedded)."""
        return self.index is not None and self.index.complete

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

    def settings_for(self, model: gate_model.GateModel) -> gate.GateSettings:
        c = self.config
        return gate.GateSettings(
            model.threshold if c.min_score is None else c.min_score,
            c.max_memories,
            c.budget_tokens,
            c.dedup_threshold,
            c.relative_score,
        )


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
