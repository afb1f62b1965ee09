"""BM25 and vector rankings, and how they are fused into one score per memory.

Both rankers see the same scopes. BM25 comes from the FTS5 index (one query per
recall); the vector ranking from `VectorIndex`. Which fusion works was measured on
bench/recall_eval.py, not assumed (numbers in docs/recall.md):

- `weighted` (default): `w * cosine + (1 - w) * bm25 / (bm25 + K)`. Both parts are
  absolute, so the fused score means the same thing for every query, which is what
  the gate's fixed minimum score needs. The saturating BM25 term keeps one rare-word
  match from dominating, and the cosine of a BM25 hit is always computed (its vector
  is in RAM), so a memory found by only one ranker is still scored on both.
- `rrf`: reciprocal rank fusion, 1/(60 + rank) summed. Rank-only, so its scores say
  nothing about absolute relevance: under `rrf` the gate uses the weighted score of
  the same memories, and only the order comes from RRF.
- `vector`, `bm25`: one ranker alone (the baselines; `bm25` is also what recall falls
  back to with `recall.embedder = none`).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engram.store import fts

FUSIONS = ("weighted", "rrf", "vector", "bm25")

# Round 1's fusion, measured on bench/recall_eval.py. Recall now ranks with its gate model
# (gate_model.py); `fuse` remains for `engram search --mode` and the benchmark baselines.
VECTOR_WEIGHT = 0.6
BM25_HALF = 6.0  # the BM25 score that counts as half a full match
RRF_K = 60
TWO_PASS_ROWS = 5000  # see bm25_search

# Words that carry no topic in a developer's request: English function words, and the
# verbs every request starts with ("fix", "add", "write", "explain": one of them matching
# a short memory gave BM25 ~5 on its own, as much as a real topic word). Dropping them
# keeps BM25 to the topic and the FTS query cheap at 100k memories (a term in every row
# makes FTS5 score every row). Measured: recall@1 +0.02, gate J +0.02.
STOPWORDS = frozenset(
    """
a about above after again against all also am an and any are aren as at be because been
before being below between both but by can cannot could couldn did didn do does doesn doing
don down during each else ever few for from further get gets got had has have having he her
here hers him his how i if in into is isn it its itself just let lets like ll me might more
most my myself need no nor not now of off on once only or other our ours out over own please
pls re s same she should so some such t than thank thanks that the their theirs them then
there these they this those through to too under until up us ve very want was we were what
when where which while who whom why will with would yes yet you your yours
add again better change check create explain fix get give good help instead know look make
new real run set show take tell thing try update use using way write
""".split()
)

_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str, limit: int = 32) -> list[str]:
    """The distinct, lower-cased topic words of a query, in order."""
    words = dict.fromkeys(w.lower() for w in _WORD.findall(text))
    terms = [w for w in words if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]
    return terms[:limit]


def fts_match(terms: Sequence[str]) -> str | None:
    """An FTS5 MATCH expression: each term quoted (no syntax from user text), OR-ed."""
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


@dataclass(slots=True)
class Hit:
    """One memory as the rankers saw it. Scores are filled in by `fuse`."""

    id: str
    bm25: float = 0.0  # SQLite's bm25() negated: higher is better, 0 = no term matched
    cosine: float = 0.0
    bm25_rank: int | None = None  # 1-based, None: not in BM25's candidates
    vector_rank: int | None = None
    score: float = 0.0  # the absolute (weighted) score the gate compares
    order: float = 0.0  # the fusion's sort key (== score except for rrf)
    row: dict[str, object] = field(default_factory=dict)


class TermStats:
    """How many rows each query term matches, to keep BM25's work bounded.

    FTS5 computes bm25() for every row matching any term (~1 us a row), so a query with
    a common word ("tests" in 12% of 100k memories) cost 15-30 ms; yet such a word's IDF
    is ~2 against ~9 for a rare one, so it barely moves the ranking. Terms are therefore
    kept rarest first while their rows add up to at most `ROW_SHARE` of the store (never
    fewer than `MIN_ROWS`, so small stores keep every term); the rarest term stays even
    alone, unless it matches so many rows that BM25 is skipped (the vector ranker still
    answers). Counting a term's rows is a doclist walk (~0.05 ms); counts are cached until
    the store has grown or shrunk by 2%. Thread-safe enough: a lost update costs a recount.
    """

    ROW_SHARE = 0.03
    MIN_ROWS = 1000

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._counted_at = 0  # store size when the counts were started
        self._rows = 0

    @property
    def rows(self) -> int:
        """Memories in the store (any status) as of the last `prune`."""
        return self._rows

    def prune(self, conn: sqlite3.Connection, terms: list[str]) -> list[str]:
        """The terms worth their cost, in the original order."""
        if not terms:
            return terms
        rows = fts.memory_rows_bound(conn)
        if (
            abs(rows - self._counted_at) > 0.02 * max(self._counted_at, 1)
            or len(self._counts) > 50_000
        ):
            self._counts, self._counted_at = {}, rows
        self._rows = rows
        budget = max(self.MIN_ROWS, int(self.ROW_SHARE * rows))
        if rows <= budget:
            return terms
        counts = {t: self._count(conn, t) for t in terms}
        kept: set[str] = set()
        spent = 0
        for term in sorted((t for t in terms if counts[t]), key=counts.__getitem__):
            if spent + counts[term] > budget and (kept or counts[term] > 4 * budget):
                break
            kept.add(term)
            spent += counts[term]
        return [t for t in terms if t in kept]

    def doc_freq(self, conn: sqlite3.Connection, term: str) -> int:
        """Memories (any status) containing `term`; cached like the pruning counts."""
        return self._count(conn, term)

    def _count(self, conn: sqlite3.Connection, term: str) -> int:
        n = self._counts.get(term)
        if n is None:
            match = fts_match([term])
            n = fts.match_count(conn, match) if match else 0
            self._counts[term] = n
        return n


def bm25_search(
    conn: sqlite3.Connection,
    text: str,
    scopes: Sequence[str],
    limit: int,
    stats: TermStats | None = None,
    visible: float = 1.0,
) -> list[Hit]:
    """Best BM25 matches among active memories of `scopes`; rows carry the memory fields.

    In a large store (over TWO_PASS_ROWS) FTS5 first ranks on its own and only its best
    `2 * limit / visible` rows are joined with `memories`, `visible` being the share of
    memories these scopes hold (from the vector index): joining every matching row
    before sorting doubled the cost at 100k memories. If too few survive the scope
    filter, the query is redone joining every match, which is cheap exactly when few
    rows match.
    """
    terms = query_terms(text)
    if stats is not None:
        terms = stats.prune(conn, terms)
    match = fts_match(terms)
    if match is None or not scopes:
        return []
    rows: list[fts.BM25Row] = []
    if stats is not None and stats.rows > TWO_PASS_ROWS:
        inner = min(100_000, int(2 * limit / max(visible, 0.0001)) + limit)
        rows = fts.bm25_rows(conn, match, scopes, limit, inner=inner)
    if len(rows) < limit:
        rows = fts.bm25_rows(conn, match, scopes, limit)
    return [
        Hit(
            mid,
            bm25=-float(rank),
            bm25_rank=i,
            row={"content": content, "kind": kind, "scope": scope, "content_hash": chash},
        )
        for i, (mid, content, kind, scope, chash, rank) in enumerate(rows, start=1)
    ]


def bm25_part(bm25: float) -> float:
    return bm25 / (bm25 + BM25_HALF) if bm25 > 0 else 0.0


def weighted_score(cosine: float, bm25: float, vector_weight: float = VECTOR_WEIGHT) -> float:
    return vector_weight * max(cosine, 0.0) + (1 - vector_weight) * bm25_part(bm25)


def merge(bm25_hits: list[Hit], vector_hits: list[tuple[str, float]]) -> dict[str, Hit]:
    """One Hit per memory found by either ranker."""
    hits = {h.id: h for h in bm25_hits}
    for rank, (mid, cos) in enumerate(vector_hits, start=1):
        hit = hits.get(mid)
        if hit is None:
            hit = hits[mid] = Hit(mid)
        hit.cosine, hit.vector_rank = cos, rank
    return hits


def fill_cosines(
    hits: dict[str, Hit], query_vec: np.ndarray | None, vectors: dict[str, np.ndarray]
) -> None:
    """The cosine of BM25-only hits, from their vectors in RAM (no ranker left blind)."""
    if query_vec is None:
        return
    for mid, hit in hits.items():
        if hit.vector_rank is None and mid in vectors:
            hit.cosine = float(vectors[mid] @ query_vec)


def fuse(
    hits: dict[str, Hit],
    method: str,
    *,
    has_vectors: bool = True,
    vector_weight: float = VECTOR_WEIGHT,
) -> list[Hit]:
    """Score every hit and return them best first (ties: the id, for stable output).

    `score` is what the gate compares with recall.min_score: the weighted score for
    `weighted` and `rrf`, the cosine for `vector`, the saturated BM25 for `bm25`.
    """
    if method not in FUSIONS:
        raise ValueError(f"unknown fusion {method!r} (one of {', '.join(FUSIONS)})")
    if not has_vectors:  # no embedder: BM25 is all there is
        method = "bm25"
    for hit in hits.values():
        if method == "weighted":
            hit.score = hit.order = weighted_score(hit.cosine, hit.bm25, vector_weight)
        elif method == "rrf":
            hit.score = weighted_score(hit.cosine, hit.bm25, vector_weight)
            hit.order = sum(1.0 / (RRF_K + r) for r in (hit.bm25_rank, hit.vector_rank) if r)
        elif method == "vector":
            hit.score = max(hit.cosine, 0.0)
            hit.order = hit.cosine if hit.vector_rank is not None else -1.0
        else:
            hit.score = bm25_part(hit.bm25)
            hit.order = hit.bm25 if hit.bm25_rank is not None else -1.0
    return sorted(hits.values(), key=lambda h: (-h.order, -h.score, h.id))
