"""`engram search` with recall's ranking (hybrid, the default) or by meaning alone.

A search lists related memories rather than deciding what to inject, so it has no
gate, only a floor: in hybrid mode a memory stays if it shares a word with the query
(BM25 matched it) or the gate model gives it at least SEARCH_FLOOR; in semantic mode,
a cosine of at least SEARCH_MIN_COSINE. On the tuning half of the labelled set a floor
of 0.1 keeps 86% of the relevant memories on probability alone (BM25 matches are
listed anyway) and 3.3% of the unrelated candidates (0.05: 90% and 5.2%).

A search spans every scope, so each project memory counts as in its own project for
the gate model's scope prior (features._scope_kind).
"""

from __future__ import annotations

from typing import Any

from engram.recall.service import Recaller
from engram.store import reader
from engram.store import vectors as vector_store
from engram.store.db import Store

SEARCH_FLOOR = 0.1  # the gate model's probability
SEARCH_MIN_COSINE = 0.2  # MiniLM: unrelated developer notes sit around 0.0-0.15


def semantic_search(
    store: Store,
    config: Any,
    query: str,
    *,
    scope: str | None = None,
    scopes: tuple[str, ...] | None = None,
    kind: str | None = None,
    limit: int = 20,
    semantic_only: bool = False,
    recaller: Recaller | None = None,
) -> list[tuple[Any, float]]:
    """(MemoryRecord, score) best first, over one scope, several (`scopes`) or all of
    them. A long-lived caller (the MCP server, the web UI) passes its own warm `recaller`
    and keeps it current itself (`Recaller.refresh`)."""
    recaller = recaller or Recaller(store, config, background=False)
    recaller.warm()
    pool = max(limit * 3, 40)
    with store.read() as conn:
        if scopes is None:
            scopes = (scope,) if scope else tuple(vector_store.active_scopes(conn))
        ranking = recaller.rank(conn, query, scopes, pool=pool)
        hits = ranking.hits
        if semantic_only:
            hits = [h for h in hits if ranking.has_vectors and h.cosine >= SEARCH_MIN_COSINE]
            hits.sort(key=lambda h: (-h.cosine, h.id))
            scored = [(h, h.cosine) for h in hits]
        else:
            scored = [
                (h, h.score) for h in hits if h.bm25_rank is not None or h.score >= SEARCH_FLOOR
            ]
        scored = [(h, s) for h, s in scored if kind is None or h.row["kind"] == kind][:limit]
        return [(reader.get_memory(conn, h.id), s) for h, s in scored]
